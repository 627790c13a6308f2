"""What every response shape is built from: the base ``Shape``, required fields, the page of a list."""

from __future__ import annotations

from functools import lru_cache

from marshmallow import INCLUDE, Schema, fields


class Shape(Schema):
    """A response shape: keys beyond those listed are allowed."""

    class Meta:
        unknown = INCLUDE


def text(**kwargs):
    """A required string; ``null=True`` allows ``null``."""
    return fields.String(required=True, allow_none=kwargs.pop("null", False), **kwargs)


def timestamp(null=False):
    """A required ISO 8601 date and time."""
    return fields.DateTime(required=True, allow_none=null)


def anything(null=True):
    """A required value of any JSON type."""
    return fields.Raw(required=True, allow_none=null)


def dictionary(null=False):
    """A required JSON object."""
    return fields.Dict(required=True, allow_none=null)


class PageInfoShape(Shape):
    """Cursors of a list: pass ``after`` (older) or ``before`` (newer) back to page."""

    after = text(null=True)
    before = text(null=True)
    page_size = fields.Integer(required=True)


@lru_cache(maxsize=None)
def page_of(entry: type[Schema]) -> type[Schema]:
    """The ``{"entries", "page_info"}`` shape of a list of ``entry``."""
    name = entry.__name__.removesuffix("Shape") + "PageShape"
    return Shape.from_dict(
        {"entries": fields.List(fields.Nested(entry), required=True), "page_info": fields.Nested(PageInfoShape)},
        name=name,
    )
