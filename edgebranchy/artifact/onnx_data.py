"""Whether an ONNX graph keeps tensors in external data files, read from the protobuf wire format (no onnx package).

ONNX Runtime and TensorRT's parser load a tensor whose `data_location` is EXTERNAL from a file named inside the
graph, next to it; the manifest's sha256 covers the graph, not that file. An artifact therefore refuses graphs
with external data (export writes every tensor inside its graph). The walk follows the messages that can hold a
tensor: model -> graph / function -> node -> attribute -> tensor / sparse tensor / subgraph (an If's branches).
"""
from __future__ import annotations

from typing import Iterator, List, Tuple

# message type -> {field number: message type of that (length-delimited) field}
_MODEL, _GRAPH, _FUNCTION, _NODE, _ATTR, _TENSOR, _SPARSE = range(7)
_CHILDREN = {
    _MODEL: {7: _GRAPH, 25: _FUNCTION},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _FUNCTION: {7: _NODE},
    _NODE: {5: _ATTR},
    _ATTR: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
    _TENSOR: {},
}
_TENSOR_NAME, _DATA_LOCATION, _EXTERNAL = 8, 14, 1


class NotProtobuf(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(b: memoryview, i: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(b) or shift > 63:
            raise NotProtobuf("truncated varint")
        byte = b[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not byte & 0x80:
            return value, i


def _fields(b: memoryview) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, varint value or the field's bytes) of one message."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(b, i)
            yield field, wire, value
        elif wire == 2:
            n, i = _varint(b, i)
            if i + n > len(b):
                raise NotProtobuf("a field runs past the end")
            yield field, wire, b[i:i + n]
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise NotProtobuf(f"wire type {wire}")
    if i != len(b):
        raise NotProtobuf("truncated field")


def external_tensors(data: bytes) -> List[str]:
    """Names of the tensors of an ONNX model (bytes) whose data lives in an external file."""
    found: List[str] = []
    stack = [(memoryview(data), _MODEL)]
    while stack:
        body, kind = stack.pop()
        name, external = "", False
        for field, wire, value in _fields(body):
            if kind == _TENSOR and field == _DATA_LOCATION and wire == 0:
                external = value == _EXTERNAL
            elif kind == _TENSOR and field == _TENSOR_NAME and wire == 2:
                name = bytes(value).decode("utf-8", "replace")
            elif wire == 2 and field in _CHILDREN[kind]:
                stack.append((value, _CHILDREN[kind][field]))
        if external:
            found.append(name or "?")
    return found


def refuse_external_data(path, data: bytes) -> None:
    """EdgeBranchyError when the ONNX graph `data` (the file `path` of an artifact) is malformed or names
    external data, which the manifest's hashes would not cover."""
    from edgebranchy.errors import EdgeBranchyError

    try:
        names = external_tensors(data)
    except NotProtobuf as e:
        raise EdgeBranchyError(f"artifact file {path} is not an ONNX graph ({e})") from None
    if names:
        raise EdgeBranchyError(f"artifact file {path} keeps tensor {names[0]!r}"
                               f"{f' and {len(names) - 1} more' if len(names) > 1 else ''} in an external data file, "
                               "which the manifest's sha256 does not cover; export it again (edgebranchy export "
                               "writes every tensor inside its graph)")
