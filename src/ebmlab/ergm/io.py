"""Reading graphs from files for the ERGM command line: edge lists (.edgelist/.txt/.csv), GraphML, GML.

Edge lists hold one tie per line, two node labels separated by whitespace (``.edgelist``/``.txt``) or a
comma (``.csv``); ``#`` starts a comment; extra columns are ignored. A ``.csv`` whose first line names
its columns (e.g. ``source,target``) is read with that header skipped. Node labels stay strings; a label with
a NUL byte is refused (DataError). Self-loops are kept in the networkx graph; binding it to an ERGM drops them
with a warning that gives their count (:func:`ebmlab.ergm.network.as_network`).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Union

import networkx as nx

from .._core.errors import DataError

__all__ = ["read_graph", "GRAPH_SUFFIXES"]

GRAPH_SUFFIXES = (".edgelist", ".txt", ".csv", ".graphml", ".gml")


def _read_edge_rows(path: Path, delimiter: Optional[str]):
    rows = []
    with open(path, newline="") as fh:
        if delimiter == ",":
            reader = csv.reader(line for line in fh if line.strip() and not line.lstrip().startswith("#"))
            for k, row in enumerate(reader, 1):
                rows.append((k, [c.strip() for c in row]))
        else:
            for k, line in enumerate(fh, 1):
                line = line.split("#", 1)[0].strip()
                if line:
                    rows.append((k, line.split()))
    return rows


def _no_nul(g: nx.Graph, p: Path) -> nx.Graph:
    """``g``, or a DataError naming the first node label with a NUL byte."""
    bad = next((v for v in g.nodes if isinstance(v, str) and "\x00" in v), None)
    if bad is not None:
        raise DataError(f"{str(p)!r}: node label {bad!r} contains a NUL byte (\\x00); node labels must be printable "
                        "text")
    return g


def read_graph(path: Union[str, Path], directed: bool = False) -> nx.Graph:
    """Read a graph file into networkx.

    Parameters
    ----------
    path : str or Path
        ``.edgelist``, ``.txt``, ``.csv`` (edge lists), ``.graphml`` or ``.gml``.
    directed : bool
        For edge lists: build a DiGraph. GraphML/GML files carry their own direction.

    Raises
    ------
    DataError
        Missing file, unknown suffix, or content that cannot be parsed (with the line number).
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"graph file {str(p)!r} does not exist")
    if not p.is_file():
        raise DataError(f"graph path {str(p)!r} is not a file")
    suffix = p.suffix.lower()
    if suffix not in GRAPH_SUFFIXES:
        raise DataError(f"unknown graph file type {suffix!r} for {str(p)!r}; allowed: {', '.join(GRAPH_SUFFIXES)}")
    try:
        if suffix == ".graphml":
            return _no_nul(nx.read_graphml(p), p)
        if suffix == ".gml":
            return _no_nul(nx.read_gml(p), p)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - any parser failure is a data error for the user
        raise DataError(f"cannot read {str(p)!r} as {suffix[1:].upper()}: {err}") from None
    try:
        rows = _read_edge_rows(p, "," if suffix == ".csv" else None)
    except UnicodeDecodeError:
        raise DataError(f"{str(p)!r} is not a text edge list") from None
    g = nx.DiGraph() if directed else nx.Graph()
    for idx, (line, cols) in enumerate(rows):
        if len(cols) < 2 or not cols[0] or not cols[1]:
            raise DataError(f"{str(p)!r} line {line}: expected two node labels per line, got {cols!r}")
        if idx == 0 and suffix == ".csv" and cols[0].lower() in ("source", "from", "node1", "u", "tail") :
            continue
        bad = next((c for c in cols[:2] if "\x00" in c), None)
        if bad is not None:
            raise DataError(f"{str(p)!r} line {line}: node label {bad!r} contains a NUL byte (\\x00); node labels "
                            "must be printable text")
        g.add_edge(cols[0], cols[1])
    if g.number_of_nodes() == 0:
        raise DataError(f"{str(p)!r} contains no edges")
    return g
