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

// A figure beside the code is drawn small; a click opens it at full size.
(() => {
  const link = () => {
    document.querySelectorAll('article img[src*="pair_grid"], article img[src*="einsum"], ' +
      'article img[src*="ranking"], article img[src*="edge_softmax"], ' +
      'article img[src*="receptive_field"]').forEach((img) => {
      if (img.closest('a')) return;
      const anchor = document.createElement('a');
      anchor.href = img.getAttribute('src');
      anchor.title = 'Open the figure at full size';
      img.replaceWith(anchor);
      anchor.appendChild(img);
    });
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', link);
  else link();
})();
