r"""
# Code lines that wrap under themselves

A code cell's long line, where it must wrap, should continue one indent deeper than the line
starts, as a continued Python line is written, not at the left edge of the column.
`LineFormatter` is Pygments' HTML formatter with every line in

```html
<span class="line" style="--hang: 12ch">...</span>
```

where `--hang` is where a continuation starts: past the line number, past the line's own
indentation, and four more columns. `sidebyside.css` turns the spans into blocks with that hanging
indent (from 50em wide; on a phone a long line scrolls instead). A line that fits is shown as
before, and copying a block copies the same text. A numbered line is a permalink, `#L<number>`,
and its number links to it.

Both engines use it: `sidebyside.markdown` for its rows, and `sidebyside.sphinx` makes it the
formatter of Sphinx's HTML highlighter (a site may set a subclass of its own).
"""

from __future__ import annotations

import html
import re
from typing import Any

from pygments.formatters import HtmlFormatter

# Continuations are indented this many columns deeper than their line.
HANG = 4
# Beyond this indentation (a rare, deeply aligned line) a continuation moves no further right.
MAX_INDENT = 60

_NUMBER = re.compile(r'<span class="linenos[^"]*">(\s*)(\d+)</span>')
_TAG = re.compile(r'<[^>]+>')


class LineFormatter(HtmlFormatter):
    """Pygments' HTML formatter, each line a `<span class="line">` with its hanging indent."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.linespans = 'line'

    def _wrap_linespans(self, inner):
        lines = list(inner)
        numbered = self.linenos == 2
        digits = len(str(self.linenostart + sum(1 for kind, _ in lines if kind) - 1))
        for kind, line in lines:
            if not kind:
                yield kind, line
                continue
            code = _NUMBER.sub('', line, count=1)
            text = html.unescape(_TAG.sub('', code))
            indent = len(text) - len(text.lstrip(' '))
            hang = (digits + 1 if numbered else 0) + min(indent, MAX_INDENT) + HANG
            number = _NUMBER.match(line) if numbered else None
            if number is None:
                yield kind, f'<span class="line" style="--hang: {hang}ch">{line}</span>'
                continue
            padding, label = number.groups()
            link = f'<a href="#L{label}">{label}</a>'
            line = f'<span class="linenos">{padding}{link}</span>' + line[number.end():]
            style = f'--hang: {hang}ch'
            yield kind, f'<span class="line" id="L{label}" style="{style}">{line}</span>'
