r"""
# TeX to MathML

The one conversion of math on every page, for both engines: TeX becomes MathML Core with
[math-core](https://pypi.org/project/math-core/) when the page is built, so the pages need no
MathJax and no network, and browsers lay the formulas out themselves.

* inline math becomes `<math>...</math>`, display math `<math display="block">...</math>`;
* a display block of several equations (separated by blank lines) or several lines (`\\`) is aligned,
  as Sphinx's MathJax renderer does;
* punctuation that touches inline math (`$x$,` or `($x$)`) belongs on the formula's line: the engines
  wrap both in `<span class="math-nowrap">`, with the patterns below, because a browser may break a line
  on either side of a `<math>` element and would start a line with a lone comma.

A formula math-core cannot convert raises `LatexError`; each engine reports it with the file and line,
and fails the build rather than publish TeX where math should be.
"""

from __future__ import annotations

import functools
import re


class LatexError(ValueError):
    """A formula math-core cannot convert; the message names the formula and the reason."""


@functools.cache
def _converter():
    """One converter per process. Compact one-line errors (the default draws a coloured diagnostic
    for a terminal)."""
    from math_core import LatexToMathML

    return LatexToMathML(fancy_error=False)


@functools.cache
def to_mathml(tex: str, display: bool) -> str:
    """MathML for `tex`; raises `LatexError`. Each formula is converted once per process."""
    import math_core

    try:
        return _converter().convert_with_local_state(tex, displaystyle=display)
    except math_core.LatexError as error:
        reason = str(error).strip()
        message = f'math-core cannot render the formula {tex!r}: {reason}'
        raise LatexError(message) from error


def display_tex(tex: str, nowrap: bool = False) -> str:
    r"""The TeX of a display block. A block without its own environment (not `nowrap`) that holds
    several equations or lines is wrapped in `aligned` (math-core has `aligned`, not `split`)."""
    if nowrap:
        return tex
    parts = [part.strip() for part in tex.split('\n\n') if part.strip()]
    if len(parts) > 1 or r'\\' in tex:
        return r'\begin{aligned}' + r' \\ '.join(parts) + r'\end{aligned}'
    return tex


# Punctuation that belongs to the formula before it, or to the one after it.
CLOSING = re.compile(r'^[.,;:!?)\]}\'"\u2019\u201d]+')
OPENING = re.compile(r'[(\[{\'"\u2018\u201c]+$')
