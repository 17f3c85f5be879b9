r"""
# TeX to MathML

The one conversion of math on every page, for both engines: TeX becomes MathML Core with
[math-core](https://pypi.org/project/math-core/) when the page is built, so the pages need no
MathJax and no network, and browsers lay the formulas out themselves.

* inline math becomes `<math>...</math>`, display math `<math display="block">...</math>`;
* a prime is written at the size of the letter it follows (`readable_primes`);
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
import html
import re
import xml.etree.ElementTree as ElementTree


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
        mathml = _converter().convert_with_local_state(tex, displaystyle=display)
    except math_core.LatexError as error:
        reason = str(error).strip()
        message = f'math-core cannot render the formula {tex!r}: {reason}'
        raise LatexError(message) from error
    return readable_primes(mathml)


PRIMES = {'\u2032', '\u2033', '\u2034', '\u2057'}
# XML knows only its own five named entities; the others are written out as characters.
_NAMED_ENTITY = re.compile(r'&(?!(?:lt|gt|amp|quot|apos);)[A-Za-z][A-Za-z0-9]*;')


def readable_primes(mathml: str) -> str:
    """`h'_i`, `F'` and `j'` as a reader expects to see them.

    TeX's `'` is a superscript prime, and math-core writes it so:
    `<msup><mi>F</mi><mo>′</mo></msup>`. But the prime of a Unicode math font (U+2032) is already
    small and raised, drawn to stand on the line after its letter; as a superscript a browser
    shrinks and lifts it once more, to a speck. So a prime that is the whole superscript follows
    its letter on the line instead: `F'` becomes `<mrow><mi>F</mi><mo>′</mo></mrow>`, and `h'_i`
    becomes `<msub><mrow><mi>h</mi><mo>′</mo></mrow><mi>i</mi></msub>`.
    """
    if not any(prime in mathml for prime in PRIMES):
        return mathml
    try:
        root = ElementTree.fromstring(
            _NAMED_ENTITY.sub(lambda match: html.unescape(match.group()), mathml))
    except ElementTree.ParseError:
        return mathml
    for parent in root.iter():
        for index, child in enumerate(list(parent)):
            n_children = 3 if child.tag == 'msubsup' else 2
            if child.tag not in ('msup', 'msubsup') or len(child) != n_children:
                continue
            script = child[-1]
            if script.tag != 'mo' or (script.text or '').strip() not in PRIMES:
                continue
            primed = ElementTree.Element('mrow')
            primed.extend([child[0], script])
            if child.tag == 'msup':
                parent[index] = primed
            else:
                subscripted = ElementTree.Element('msub')
                subscripted.extend([primed, child[1]])
                parent[index] = subscripted
    return ElementTree.tostring(root, encoding='unicode')


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
