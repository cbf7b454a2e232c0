"""The base of every document that crosses a module or process boundary.

A document is a pydantic model: strict (``true`` is not a number, ``"5"`` is not an int),
closed (an unknown field is an error that names it) and immutable. Its writer builds it, its
reader validates it with the same class, and the tests use that class too, so the two sides
cannot drift apart. Figures derived from other fields (``@computed_field``) are written out for
humans and other tools, and recomputed, not trusted, when a document is read back.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _recompute_derived(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.model_computed_fields:
            return {key: value for key, value in data.items() if key not in cls.model_computed_fields}
        return data
