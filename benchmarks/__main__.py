"""The one way to run a benchmark: ``python -m benchmarks NAME [args]``; with no name, the list.

Each benchmark is a module of this package whose ``main()`` parses the command line. It is
imported only when asked for: most of them load torch, which takes seconds.
"""

from __future__ import annotations

import importlib
import sys

#: Benchmark (its module in this package) -> what it measures.
BENCHMARKS: dict[str, str] = {
    "exporters": "eager PyTorch vs exported ONNX/TorchScript, small to large: ratios, FLOP/s vs matmul peak",
    "serving": "HTTP serving overhead over in-process calls, and dynamic batching efficiency",
    "overload": "10x the sustainable rate: cost of a 503, /healthz latency, goodput, recovery",
    "energy": "overhead of the power timeline and an open meter window on encoder throughput",
    "headroom": "whether locust, not the server, is ever the bottleneck (CPU, sent vs offered)",
    "contention": "eager, TorchScript and ONNX requests, quiet and beside CPU burners, per thread setting",
    "precision": "int8 vs fp32 ONNX on the CPU, small and base: latency ratios, identical tokens, sizes",
}


def usage() -> str:
    width = max(map(len, BENCHMARKS))
    rows = "\n".join(f"  {name:<{width}}  {about}" for name, about in BENCHMARKS.items())
    return f"usage: python -m benchmarks NAME [args]   (NAME --help for its options)\n\n{rows}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"benchmarks.{name}")
    sys.argv = [f"python -m benchmarks {name}", *rest]  # what its argparse reads, and its usage line
    status: object = module.main()
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
