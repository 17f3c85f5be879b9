"""
The pictures of the layer pages, drawn with matplotlib while the site builds.

Each function draws one figure for a place where words struggle; `write_all(folder)` writes them as
SVG (`folder/NAME.svg`, served as `_static/figures/NAME.svg`). The module docstrings link them with
Markdown, `![what it shows](../_static/figures/NAME.svg)`, next to the rows they explain.

The numbers in the pictures are made up for the picture (three nodes, four edges...), except where
a figure computes them with the formulas of the page, as the ranking figure does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

# Okabe & Ito's colours, told apart by readers with any common colour vision.
BLUE, ORANGE, GREEN, PINK, SKY, YELLOW, GREY = (
    '#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#F0E442', '#BBBBBB')
NODE_COLOURS = (BLUE, ORANGE, GREEN, PINK)
FONT_SIZE = 14


def _pyplot():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        'font.size': FONT_SIZE, 'svg.hashsalt': 'labml_gat', 'svg.fonttype': 'path',
        'figure.facecolor': 'white', 'axes.facecolor': 'white', 'mathtext.fontset': 'cm',
    })
    return plt


def _cell(ax, x: float, y: float, text: str, colour: str, width: float = 1.0, height: float = 0.8,
          alpha: float = 0.35, size: float = FONT_SIZE) -> None:
    """A labelled box with its lower left corner at (x, y)."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x + 0.04, y + 0.04), width - 0.08, height - 0.08,
                                boxstyle='round,pad=0,rounding_size=0.08',
                                facecolor=colour, alpha=alpha, edgecolor=colour, linewidth=1.2))
    ax.text(x + width / 2, y + height / 2, text, ha='center', va='center', fontsize=size)


def _arrow(ax, start, end, text: str = '', colour: str = '#444444', **kwargs) -> None:
    ax.annotate('', xy=end, xytext=start,
                arrowprops=dict(arrowstyle='->', color=colour, lw=1.3, shrinkA=2, shrinkB=2, **kwargs))
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.25, text, ha='center',
                va='bottom', fontsize=FONT_SIZE - 1, color=colour)


def pair_grid():
    """`repeat_interleave` and `tile` line up every query $i$ with every neighbour $j$ (3 nodes,
    numbered from 0 as the rows are, so that row $iN + j$ holds the pair $(i, j)$)."""
    plt = _pyplot()
    n = 3
    fig, ax = plt.subplots(figsize=(8.4, 4.8))
    top = n * n
    ax.text(0.9, top + 1.0, 'g_r.repeat_interleave(\n3, dim=-3)', ha='center', family='monospace',
            fontsize=FONT_SIZE - 4, linespacing=1.1)
    ax.text(5.5, top + 1.0, 'g_l.tile(\n3, 1, 1)', ha='center', family='monospace',
            fontsize=FONT_SIZE - 4, linespacing=1.1)
    ax.text(-0.35, top + 0.2, 'row', ha='right', fontsize=FONT_SIZE - 2, color='#666666')
    for row in range(n * n):
        i, j = divmod(row, n)
        y = top - 1 - row
        ax.text(-0.35, y + 0.4, f'{row}', ha='right', va='center', fontsize=FONT_SIZE - 2, color='#666666')
        _cell(ax, 0.4, y, rf'$g_{{r,{i}}}$', NODE_COLOURS[i])
        ax.text(3.2, y + 0.4, '+', ha='center', va='center')
        _cell(ax, 5.0, y, rf'$g_{{l,{j}}}$', NODE_COLOURS[j], alpha=0.15)
    ax.text(7.3, top / 2 + 0.5, 'row\n$iN + j$\nbecomes\n[i, j]', ha='center', va='bottom',
            fontsize=FONT_SIZE - 2, color='#444444', linespacing=1.1)
    _arrow(ax, (6.3, top / 2), (8.3, top / 2))
    # The same nine sums as an N x N grid: the query i down, the neighbour j across.
    x0, width, height = 10.2, 3.0, 1.6
    y_top = top - 0.4
    for i in range(n):
        y = y_top - (i + 1) * height
        ax.text(x0 - 0.15, y + height / 2, f'$i={i}$', ha='right', va='center')
        for j in range(n):
            x = x0 + j * width
            _cell(ax, x, y, rf'$g_{{r,{i}}} + g_{{l,{j}}}$', NODE_COLOURS[i], width=width,
                  height=height, alpha=0.35, size=FONT_SIZE - 1)
            ax.add_patch(plt.Rectangle((x + 0.3, y + 0.2), width - 0.6, 0.14, color=NODE_COLOURS[j],
                                       alpha=0.7, linewidth=0))
    for j in range(n):
        ax.text(x0 + j * width + width / 2, y_top + 0.2, f'$j={j}$', ha='center')
    ax.text(x0 + 1.5 * width, y_top - n * height - 0.7,
            'g_sum[i, j]: the query $i$ down,\nthe neighbour $j$ across', ha='center', va='top',
            fontsize=FONT_SIZE - 2)
    ax.set_xlim(-1.6, x0 + n * width + 0.2)
    ax.set_ylim(-0.3, top + 2.0)
    ax.set_aspect('equal')
    ax.axis('off')
    return fig


def einsum():
    """`einsum('ijh,jhf->ihf', a, g_l)` with its letters named: for each head, a matrix product."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.4, 4.9))
    n, f = 3, 4
    highlight = 1

    def grid(x0, y0, rows, cols, colour, rows_label, cols_label, title, lit_rows=()):
        for r in range(rows):
            for c in range(cols):
                lit = r in lit_rows
                _cell(ax, x0 + c * 0.6, y0 - (r + 1) * 0.6, '', colour, width=0.6, height=0.6,
                      alpha=0.55 if lit else 0.15)
        ax.text(x0 + cols * 0.3, y0 + 0.55, title, ha='center', fontsize=FONT_SIZE)
        ax.text(x0 + cols * 0.3, y0 + 0.1, cols_label, ha='center', fontsize=FONT_SIZE - 1, color='#444444')
        ax.text(x0 - 0.15, y0 - rows * 0.3, rows_label, ha='right', va='center', fontsize=FONT_SIZE - 1,
                color='#444444')

    y0 = 4.4
    grid(0.9, y0, n, n, ORANGE, '$i$', '$j$', r'a  $(\alpha_{ijk})$', lit_rows=(highlight,))
    ax.text(3.0, y0 - 0.9, '@', ha='center', va='center', fontsize=FONT_SIZE + 3)
    grid(4.0, y0, n, f, BLUE, '$j$', '$f$', r'g_l  $(g_{l,k,j})$', lit_rows=range(n))
    ax.text(6.8, y0 - 0.9, '=', ha='center', va='center', fontsize=FONT_SIZE + 3)
    grid(7.8, y0, n, f, GREEN, '$i$', '$f$', r"attn_res  $(h'_{ik})$", lit_rows=(highlight,))
    ax.text(5.4, y0 - 2.5, 'for every head $h$ alike: row $i$ of the result is the $\\alpha$-weighted sum '
            'of the rows $j$', ha='center', fontsize=FONT_SIZE - 1)

    ax.text(5.4, 1.45, "torch.einsum('ijh,jhf->ihf', a, g_l)", ha='center', family='monospace',
            fontsize=FONT_SIZE + 1)
    letters = [
        ('i', 'the query node', 'kept', GREEN),
        ('j', 'the neighbour', 'in both inputs, not in the result: summed over', ORANGE),
        ('h', 'the head $k$', 'in all three: the heads stay apart', PINK),
        ('f', 'a feature of a head', 'kept', BLUE),
    ]
    for row, (letter, meaning, fate, colour) in enumerate(letters):
        y = 0.8 - row * 0.48
        ax.text(1.0, y, letter, family='monospace', fontsize=FONT_SIZE + 1, color=colour,
                fontweight='bold', va='center')
        ax.text(1.5, y, meaning, va='center')
        ax.text(5.6, y, fate, va='center', color='#333333')
    ax.set_xlim(0, 12.4)
    ax.set_ylim(-1.1, 5.2)
    ax.set_aspect('equal')
    ax.axis('off')
    return fig


def _ranking_scores():
    """Scores of five queries for five neighbours with one-dimensional features $h = 1..5$:
    GAT with $a = (0.5, 1)$, $W = 1$, the neighbour's term shifted by $-3$ so that the scores
    take both signs; GATv2 with two hidden units that compute $h_i - h_j$ and $h_j - h_i$
    and $a = (-1, -1)$, so that its score is $-0.8 |h_i - h_j|$."""
    import numpy as np

    h = np.arange(1.0, 6.0)

    def leaky_relu(x):
        return np.where(x > 0, x, 0.2 * x)

    gat = leaky_relu(0.5 * h[:, None] + 1.0 * (h[None, :] - 3))
    w_r, w_l, a = np.array([1.0, -1.0]), np.array([-1.0, 1.0]), np.array([-1.0, -1.0])
    gatv2 = leaky_relu(h[:, None, None] * w_r + h[None, :, None] * w_l) @ a
    return gat, gatv2


def ranking():
    """Static against dynamic attention: the best neighbour of every query, in GAT and in GATv2."""
    plt = _pyplot()
    import numpy as np

    gat, gatv2 = _ranking_scores()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.2), constrained_layout=True)
    titles = ('GAT: every query ranks the\nneighbours in the same order',
              'GATv2: the ranking depends\non the query')
    for ax, scores, title in zip(axes, (gat, gatv2), titles):
        image = ax.imshow(scores, cmap='viridis')
        best = scores.argmax(axis=1)
        ax.scatter(best, np.arange(len(best)), marker='*', s=260, color='white', edgecolors='black',
                   linewidths=1.0, label='highest score of the query', zorder=3)
        ax.set_xticks(range(5), [f'{j + 1}' for j in range(5)])
        ax.set_yticks(range(5), [f'{i + 1}' for i in range(5)])
        ax.set_xlabel('neighbour $j$')
        ax.set_ylabel('query $i$')
        ax.set_title(title, fontsize=FONT_SIZE)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='score $e_{ij}$')
    fig.legend(*axes[0].get_legend_handles_labels(), loc='outside lower center', frameon=False)
    return fig


def edge_softmax():
    """An edge list: gather the sources' vectors, softmax over each target's edges, scatter-add."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.4, 4.6))
    # (source j, target i); the edges of one target need not be next to each other.
    edges = [(1, 0), (2, 1), (0, 1), (3, 1), (2, 0), (1, 2)]
    alphas = [0.6, 0.5, 0.2, 0.3, 0.4, 1.0]
    n_nodes = 4
    top = len(edges)
    x_src, x_edge, x_alpha, x_out = 0.0, 3.4, 7.6, 12.2
    header = top + 0.35

    def node_rows(x, title, fill):
        ax.text(x + 0.6, header, title, ha='center', fontsize=FONT_SIZE - 1, linespacing=1.1)
        rows = {}
        for v in range(n_nodes):
            y = top - 1.4 - v * 1.25
            _cell(ax, x, y, fill(v), NODE_COLOURS[v], width=1.2, alpha=0.3)
            rows[v] = y + 0.4
        return rows

    def code(x, text):
        ax.text(x, -0.2, text, va='top', ha='center', family='monospace', fontsize=FONT_SIZE - 2,
                color='#444444', linespacing=1.1)

    src_rows = node_rows(x_src, 'g_l\n(sources $j$)', lambda v: f'$g_{{l,{v + 1}}}$')
    code((x_src + 1.2 + x_edge) / 2, 'gather\nindex_select')
    ax.text(x_edge + 1.2, header, 'one row per\nedge $j \\to i$', ha='center',
            fontsize=FONT_SIZE - 1, linespacing=1.1)
    ax.text(x_alpha + 0.95, header, 'segment\nsoftmax', ha='center', fontsize=FONT_SIZE - 1,
            linespacing=1.1)
    for row, (j, i) in enumerate(edges):
        y = top - 1 - row
        _cell(ax, x_edge, y, f'${j + 1} \\to {i + 1}$', NODE_COLOURS[j], width=1.3, alpha=0.3,
              size=FONT_SIZE - 2)
        _cell(ax, x_edge + 1.35, y, f'$e_{{{i + 1}{j + 1}}}$', NODE_COLOURS[i], width=1.0, alpha=0.12,
              size=FONT_SIZE - 2)
        _arrow(ax, (x_src + 1.2, src_rows[j]), (x_edge, y + 0.4), colour=NODE_COLOURS[j])
        _cell(ax, x_alpha, y, f'$\\alpha_{{{i + 1}{j + 1}}} = {alphas[row]:.1f}$', NODE_COLOURS[i],
              width=1.9, alpha=0.3, size=FONT_SIZE - 2)
        _arrow(ax, (x_edge + 2.35, y + 0.4), (x_alpha, y + 0.4), colour='#888888')
    out_rows = node_rows(x_out, "out\n(targets $i$)",
                         lambda v: f"$h'_{{{v + 1}}}$" if any(i == v for _, i in edges) else '$0$')
    code((x_alpha + 1.9 + x_out) / 2, 'scatter\nindex_add_')
    for row, (j, i) in enumerate(edges):
        _arrow(ax, (x_alpha + 1.9, top - 1 - row + 0.4), (x_out, out_rows[i]), colour=NODE_COLOURS[i])
    ax.text((x_out + 1.2) / 2, -1.3, "the $\\alpha$ of the edges into one target add up to 1"
            " (same colour)\n$h'_i = \\sum_j \\alpha_{ij}\\, g_{l,j}$; node 4 has no in-edge and gets 0",
            ha='center', va='top', fontsize=FONT_SIZE - 1, linespacing=1.8)
    ax.set_xlim(-0.4, x_out + 1.4)
    ax.set_ylim(-3.0, top + 1.4)
    ax.set_aspect('equal')
    ax.axis('off')
    return fig


def receptive_field_layers(edges, targets, n_layers: int = 2) -> dict:
    """Hops from the targets: `{node: 0}` for the targets, 1 for the nodes whose first-layer output
    the second layer reads, 2 for the nodes whose features the first layer reads; absent otherwise.
    The same walk back from the last layer as `labml_gat.fast.receptive_field`."""
    hops = {node: 0 for node in targets}
    frontier = set(targets)
    for hop in range(1, n_layers + 1):
        frontier = {j for j, i in edges if i in frontier and j not in hops}
        hops.update({node: hop for node in frontier})
    return hops


def receptive_field():
    """The receptive field of a few training nodes in a two-layer model, on a small random graph."""
    plt = _pyplot()
    import networkx as nx

    graph = nx.connected_watts_strogatz_graph(36, 4, 0.25, seed=3)
    # Both directions of every undirected edge, plus the self-loops GAT adds.
    edges = [(u, v) for u, v in graph.edges] + [(v, u) for u, v in graph.edges]
    edges += [(v, v) for v in graph.nodes]
    targets = [0, 17]
    hops = receptive_field_layers(edges, targets)
    positions = nx.kamada_kawai_layout(graph)
    styles = [
        (0, ORANGE, 'training node: the loss reads its output'),
        (1, BLUE, '1 hop: the second layer reads its first-layer output'),
        (2, SKY, '2 hops: the first layer reads its features'),
        (None, GREY, 'outside the field: not computed'),
    ]
    fig, ax = plt.subplots(figsize=(8.4, 7.0))
    needed = [(u, v) for u, v in graph.edges if u in hops and v in hops and min(hops[u], hops[v]) < 2]
    nx.draw_networkx_edges(graph, positions, ax=ax, edge_color='#CCCCCC', width=0.8)
    nx.draw_networkx_edges(graph, positions, edgelist=needed, ax=ax, edge_color='#555555', width=1.6)
    for hop, colour, label in styles:
        nodes = [v for v in graph.nodes if hops.get(v) == hop]
        nx.draw_networkx_nodes(graph, positions, nodelist=nodes, ax=ax, node_color=colour,
                               node_size=260 if hop == 0 else 150, edgecolors='#333333',
                               linewidths=0.6, label=f'{label} ({len(nodes)})')
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, 0.0), frameon=False, fontsize=FONT_SIZE - 1)
    ax.set_title('Dark edges: the ones a two-layer model uses\nfor the outputs of the training nodes',
                 fontsize=FONT_SIZE)
    ax.axis('off')
    fig.tight_layout()
    return fig


FIGURES: dict[str, Callable] = {
    'pair_grid': pair_grid,
    'einsum': einsum,
    'ranking': ranking,
    'edge_softmax': edge_softmax,
    'receptive_field': receptive_field,
}


def write_all(folder: Path) -> list[Path]:
    """Writes every figure as `folder/NAME.svg`, unless it is newer than this module."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in FIGURES.items():
        target = folder / f'{name}.svg'
        if not target.is_file() or target.stat().st_mtime < Path(__file__).stat().st_mtime:
            plt = _pyplot()
            fig = draw()
            fig.savefig(target, format='svg', bbox_inches='tight', metadata={'Date': None})
            plt.close(fig)
        written.append(target)
    return written
