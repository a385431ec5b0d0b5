"""The source a function is graded with: the function and what it uses from its module.

A student's function defined in a notebook or a module uses that module's imports, helpers and
constants (``import numpy as np``, a ``_outer`` helper, ``EPS = 1e-5``). :func:`function_source`
writes them out as a self-contained file: an import line for each module it names, the source of
each helper function or class it calls (and what those use, in turn), constants as literals,
then the function. Top-level code of the cell (prints, plots, a call to the checker) is left
out, so only what the function needs runs in the sandbox.
"""

from __future__ import annotations

import inspect
import textwrap
import types

from ..errors import ArgumentTypeError

_LITERALS = (bool, int, float, complex, str, bytes, type(None))


def _names(code) -> list[str]:
    """Global names a code object and the code nested in it refer to, in order."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _names(const)
    return list(dict.fromkeys(names))


def _source(obj) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj)).rstrip() + "\n"
    except (OSError, TypeError):
        raise ArgumentTypeError(f"cannot read the source of {obj.__qualname__}: grade a function "
                                "defined in a file or a notebook cell") from None


def _literal(value) -> bool:
    if isinstance(value, tuple):
        return all(_literal(v) for v in value)
    return isinstance(value, _LITERALS)


def function_source(fn) -> str:
    """``fn``'s source preceded by the imports, helpers and constants it uses from its module."""
    if not inspect.isfunction(fn):
        raise ArgumentTypeError(f"expected a Python function to grade; got {type(fn).__name__}")
    imports, constants, helpers = [], [], []
    seen, todo = {fn.__name__}, [fn]
    while todo:
        current = todo.pop()
        for name in _names(current.__code__):
            if name in seen or name not in current.__globals__:
                continue  # builtins, attributes, or already written
            seen.add(name)
            value = current.__globals__[name]
            module = getattr(value, "__module__", None)
            if inspect.ismodule(value):
                imports.append(f"import {value.__name__}" if value.__name__ == name
                               else f"import {value.__name__} as {name}")
            elif (inspect.isfunction(value) or inspect.isclass(value)) and (
                    module == fn.__module__):
                helpers.append(_source(value))
                if inspect.isfunction(value):
                    todo.append(value)
            elif callable(value) and module and getattr(value, "__name__", None):
                imports.append(f"from {module} import {value.__name__} as {name}")
            elif _literal(value):
                constants.append(f"{name} = {value!r}")
    return "\n".join([*imports, "", *constants, "", *helpers, _source(fn)]).lstrip("\n")
