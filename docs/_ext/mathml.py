r"""
Math rendered to MathML at build time.

A Sphinx HTML math renderer that converts every `math` and `math_block` node to MathML Core with
[math-core](https://pypi.org/project/math-core/), so the pages need no MathJax and no network:
browsers lay MathML out themselves.

* inline math becomes `<math>...</math>` inside `<span class="math">`;
* display math becomes `<math display="block">...</math>` inside `<div class="math">`,
  with the equation number and permalink of a labelled equation, as Sphinx's MathJax renderer does;
* primes are written at the size of the letter they follow (see `readable_primes`);
* punctuation that touches inline math (`$x$,` or `($x$)`) is kept on its line: a browser may break a
  line on either side of a `<math>` element, which would start a line with a lone comma.

A formula math-core cannot convert is an error naming the file, the line and the formula, and the
build fails at its end (with or without `-W`) rather than publish TeX where math should be.

Use it with

```python
extensions = ['mathml']
html_math_renderer = 'mathml'
```
"""

from __future__ import annotations

import functools
import html
import re
import xml.etree.ElementTree as ElementTree
from typing import TYPE_CHECKING, Any

from docutils import nodes
from math_core import LatexError, LatexToMathML
from sphinx.locale import _
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.math import get_node_equation_number

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.writers.html5 import HTML5Translator

logger = logging.getLogger(__name__)

# Compact one-line errors (the default draws a coloured diagnostic for a terminal).
_CONVERTER = LatexToMathML(fancy_error=False)


@functools.cache
def to_mathml(tex: str, display: bool) -> str:
    """MathML for `tex`; raises `LatexError`. Each formula is converted once per build process."""
    return readable_primes(_CONVERTER.convert_with_local_state(tex, displaystyle=display))


_NAMED_ENTITY = re.compile(r'&(?!(?:lt|gt|amp|quot|apos);)[A-Za-z][A-Za-z0-9]*;')


def _unescape_entity(match: re.Match) -> str:
    return html.unescape(match.group())


PRIMES = {'\u2032', '\u2033', '\u2034', '\u2057'}


def readable_primes(mathml: str) -> str:
    """`h'_i`, `F'` and `j'` as a reader expects to see them.

    TeX's `'` is a superscript prime, and math-core writes it so: `<msup><mi>F</mi><mo>′</mo></msup>`.
    But the prime of a Unicode math font (U+2032) is already small and raised, drawn to stand on the
    line after its letter; as a superscript a browser shrinks and lifts it once more, to a speck.
    So a prime that is the whole superscript follows its letter on the line instead:
    `F'` becomes `<mrow><mi>F</mi><mo>′</mo></mrow>`,
    and `h'_i` becomes `<msub><mrow><mi>h</mi><mo>′</mo></mrow><mi>i</mi></msub>`.
    """
    if not any(prime in mathml for prime in PRIMES):
        return mathml
    # XML knows only its own five named entities; the others are written out as characters.
    try:
        root = ElementTree.fromstring(_NAMED_ENTITY.sub(_unescape_entity, mathml))
    except ElementTree.ParseError:
        return mathml
    for parent in root.iter():
        for index, child in enumerate(list(parent)):
            if child.tag not in ('msup', 'msubsup') or len(child) != 2 + (child.tag == 'msubsup'):
                continue
            script = child[-1]
            if script.tag != 'mo' or (script.text or '').strip() not in PRIMES:
                continue
            primed = ElementTree.Element('mrow')
            primed.extend([child[0], script])
            if child.tag == 'msup':
                parent[index] = primed
            else:
                subscript = ElementTree.Element('msub')
                subscript.extend([primed, child[1]])
                parent[index] = subscript
    return ElementTree.tostring(root, encoding='unicode')


def display_tex(node: nodes.math_block) -> str:
    r"""The TeX of a display block. As in Sphinx's MathJax renderer, a block without its own
    environment (`nowrap`) that holds several equations (separated by blank lines) or several lines
    (`\\`) is aligned; math-core has `aligned` (not `split`)."""
    tex = node.astext()
    if node.get('no-wrap', node.get('nowrap', False)):
        return tex
    parts = [part.strip() for part in tex.split('\n\n') if part.strip()]
    if len(parts) > 1 or r'\\' in tex:
        return r'\begin{aligned}' + r' \\ '.join(parts) + r'\end{aligned}'
    return tex


def _render(translator: HTML5Translator, node: nodes.Element, tex: str, display: bool) -> str:
    """MathML, or (after reporting the error at the node) the escaped TeX, so the build can go on."""
    try:
        return to_mathml(tex, display)
    except LatexError as error:
        logger.error('math-core cannot render the formula %r: %s', tex, str(error).strip(),
                     location=node, type='math', subtype='mathml')
        translator.builder.app.mathml_failures += 1
        return f'<code class="math-error">{html.escape(tex)}</code>'


def visit_math(self: HTML5Translator, node: nodes.math) -> None:
    self.body.append(self.starttag(node, 'span', '', CLASS='math notranslate'))
    self.body.append(_render(self, node, node.astext(), display=False))
    self.body.append('</span>')
    raise nodes.SkipNode


def visit_math_block(self: HTML5Translator, node: nodes.math_block) -> None:
    self.body.append(self.starttag(node, 'div', CLASS='math notranslate'))
    if node.get('number'):
        self.body.append(f'<span class="eqno">({get_node_equation_number(self, node)})')
        self.add_permalink_ref(node, _('Link to this equation'))
        self.body.append('</span>')
    self.body.append(_render(self, node, display_tex(node), display=True))
    self.body.append('</div>\n')
    raise nodes.SkipNode


# Punctuation that belongs to the formula before it, or to the one after it.
_CLOSING = re.compile(r'^[.,;:!?)\]}\'"\u2019\u201d]+')
_OPENING = re.compile(r'[(\[{\'"\u2018\u201c]+$')


class GlueMathPunctuation(SphinxPostTransform):
    """Wraps inline math and the punctuation touching it in `<span class="math-nowrap">`."""
    default_priority = 400
    formats = ('html',)

    def run(self, **kwargs: Any) -> None:
        for math in list(self.document.findall(nodes.math)):
            parent = math.parent
            index = parent.index(math)
            after = _split_text(parent, index + 1, _CLOSING, at_start=True)
            before = _split_text(parent, index - 1, _OPENING, at_start=False) if index > 0 else ''
            if before or after:
                glued = nodes.inline('', '', classes=['math-nowrap'])
                parent.replace(math, glued)
                glued += [nodes.Text(before)] * bool(before) + [math] + [nodes.Text(after)] * bool(after)


def _split_text(parent: nodes.Element, index: int, pattern: re.Pattern, at_start: bool) -> str:
    """Takes the punctuation matching `pattern` off the start (or end) of the text node `parent[index]`,
    if there is one, and returns it."""
    if not 0 <= index < len(parent) or not isinstance(parent[index], nodes.Text):
        return ''
    text = parent[index].astext()
    match = pattern.search(text)
    if match is None:
        return ''
    rest = text[match.end():] if at_start else text[:match.start()]
    if rest:
        parent[index] = nodes.Text(rest)
    else:
        parent.remove(parent[index])
    return match.group()


def _fail_on_errors(app: Sphinx, exception: Exception | None) -> None:
    """The build fails (exit status 1) if a formula could not be rendered, even without `-W`."""
    if app.mathml_failures:
        app.statuscode = 1


def setup(app: Sphinx) -> dict[str, Any]:
    app.mathml_failures = 0
    app.add_html_math_renderer('mathml', (visit_math, None), (visit_math_block, None))
    app.add_post_transform(GlueMathPunctuation)
    app.connect('build-finished', _fail_on_errors)
    # Failures are counted in the process that writes the pages, so pages are written in one process.
    return {'version': '1', 'parallel_read_safe': True, 'parallel_write_safe': False}
