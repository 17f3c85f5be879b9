// Code blocks are for reading with the keyboard too.
// * Every code block can be reached with Tab, so that a long line can be scrolled with the arrow keys.
// * The arrow keys scroll a code block, rather than go to the previous or next page (furo's
//   `navigation_with_keys`), while the focus or the selection is inside the block.
(() => {
  const inCode = (node) => {
    const element = node && (node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement);
    return !!(element && element.closest('pre, .highlight'));
  };
  const focusable = () => {
    document.querySelectorAll('pre').forEach((pre) => {
      if (!pre.hasAttribute('tabindex')) pre.tabIndex = 0;
    });
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', focusable);
  else focusable();
  window.addEventListener('keydown', (event) => {
    if (!event.key.startsWith('Arrow')) return;
    const selection = window.getSelection();
    if (inCode(document.activeElement) || (selection && inCode(selection.anchorNode))) {
      // The page's own listener, on `document`, never hears it; the block still scrolls.
      event.stopPropagation();
    }
  }, true);
})();

// Every figure opens at full size with a click: an image of the article that is not a link yet
// becomes a link to its sharpest version (the last candidate of its `srcset`, else its `src`).
// A gallery thumbnail is not: it opens its example.
(() => {
  const sharpest = (img) => {
    const candidates = (img.getAttribute('srcset') || '').split(',')
      .map((candidate) => candidate.trim().split(/\s+/)[0]).filter(Boolean);
    return candidates.length ? candidates[candidates.length - 1] : img.getAttribute('src');
  };
  const link = () => {
    document.querySelectorAll('article img').forEach((img) => {
      if (img.closest('a, .sphx-glr-thumbcontainer')) return;
      const anchor = document.createElement('a');
      anchor.href = sharpest(img);
      anchor.className = 'figure-link';
      anchor.title = 'Open the figure at full size';
      img.replaceWith(anchor);
      anchor.appendChild(img);
    });
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', link);
  else link();
})();
