r"""
---
title: The lookup module, shared by the experiment and its example
summary: >
  The synthetic task of the GATv2 paper, its model, and training on batches of small
  complete bipartite graphs with the dense attention layers.
---

# The lookup module: examples, model and training loop

The [experiment page](../experiments/dictionary_lookup.html) tells the story; this module
holds what the experiment and its [gallery
example](../experiments/gallery/plot_dictionary_lookup.html) share: the task generator,
the model and the training loop.

Every example is a small complete bipartite graph: $k$ queries, each attending to all $k$
key-value nodes, and every example has the same edges. That is where the [dense
layer](gatv2.html) is the right tool: a batch of $B$ graphs is the key-value nodes'
features `[B, k, d]` and the queries' `[k, d]` (the same in every graph), every query
attends to every key-value node (no adjacency to mask: `None`), and the layer, called
on the pair of node sets, computes all the graphs at once. Its `broadcast` scores make
the $B k^2$ pairs without copying them.
The [edge-list twins](edges.html) compute the same function on the disjoint union of the
graphs; `impl='edges'` trains with them, and a test shows that the two agree.
"""

import copy
import itertools
import math
import time
from typing import Callable, Iterable, NamedTuple, Optional

import torch
from torch import nn

from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer
from labml_gat.gat import GraphAttentionLayer
from labml_gat.gatv2 import GraphAttentionV2Layer
from labml_gat.lean import LeanGraphAttentionV2Layer
from labml_gat.results import number_of

# The dense attention layer of each `layer` setting, and its edge-list twin
LAYERS = {'gatv2': GraphAttentionV2Layer, 'gat': GraphAttentionLayer}
EDGE_LAYERS = {'gatv2': EdgeGraphAttentionV2Layer, 'gat': EdgeGraphAttentionLayer}


class Task(NamedTuple):
    r"""
    ## A DictionaryLookup task of size $k$

    The examples are permutations, one per row: the row $\pi$ is the graph in which the
    key-value node $s_j$ stores the value $\pi(j)$.
    """
    # $k$
    k: int
    # Training and test permutations, `[n_train, k]` and `[n_test, k]`
    train: torch.Tensor
    test: torch.Tensor
    # `allowed[i, v]` is `True` if value $v$ may be stored under key $i$ in a training
    # graph
    allowed: torch.Tensor


# $p$: a permutation is a training example with probability about $p$ (the share of the
# examples that the training set nears as $k$ grows), each of its $k$ pairs being allowed
# with probability $p^{1/k}$
TRAIN_FRACTION = 0.8
# The most examples of a task, drawn at random where $k!$ is more
MAX_EXAMPLES = 32000


def make_task(k: int, seed: int = 0, max_examples: int = MAX_EXAMPLES) -> Task:
    r"""
    ## Generating the examples and the split

    All $k!$ permutations when there are at most `max_examples`, otherwise `max_examples`
    uniformly random ones. $\lfloor 0.8^{1/k} k^2 \rfloor$ of the $k^2$ pairs
    (key, value) are *allowed*; a permutation all of whose pairs are allowed is a training
    example, any other a test example. Deterministic under `seed`.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f'k must be an integer of at least 2, got {k!r}')
    if (isinstance(max_examples, bool) or not isinstance(max_examples, int)
            or max_examples < 1):
        raise ValueError(f'max_examples must be a positive integer, got {max_examples!r}')
    generator = torch.Generator().manual_seed(seed)

    # All $k!$ permutations if there are few enough, else random ones: sorting i.i.d.
    # uniform numbers gives a uniformly random permutation per row. `[n_examples, k]`
    if factorial_at_most(k, max_examples) is not None:
        perms = torch.tensor(list(itertools.permutations(range(k))), dtype=torch.long)
    else:
        perms = torch.rand(max_examples, k, generator=generator).argsort(dim=1)

    # The allowed pairs $(i, v)$, sampled without replacement, as a mask `[k, k]`
    n_allowed = int(TRAIN_FRACTION ** (1 / k) * k * k)
    allowed = torch.zeros(k * k, dtype=torch.bool)
    allowed[torch.randperm(k * k, generator=generator)[:n_allowed]] = True
    allowed = allowed.view(k, k)

    # A training example has every pair $(i, \pi(i))$ allowed. `[n_examples]`
    in_train = allowed[torch.arange(k), perms].all(dim=1)
    return Task(k, perms[in_train], perms[~in_train], allowed)


def factorial_at_most(k: int, limit: int) -> Optional[int]:
    """
    $k!$ if it is at most `limit`, else `None`: without computing the factorial of a large
    $k$, which alone takes seconds at $k = 10^6$ and longer than anyone waits beyond.
    """
    product = 1
    for factor in range(2, k + 1):
        product *= factor
        if product > limit:
            return None
    return product


def n_examples(k: int, max_examples: int) -> int:
    """The number of examples of `make_task`: the smaller of $k!$ and `max_examples`."""
    return factorial_at_most(k, max_examples) or max_examples


# ## The memory a run needs
#
# A $k$ of a thousand looks harmless on the command line, but the examples grow with
# $k$ and a training step with $B k^2$ pairs. These estimates are arithmetic, so that a
# run too large for the machine is refused before anything is allocated, rather than
# found out by the allocator or the kernel's out-of-memory killer minutes later.

def examples_bytes(k: int, max_examples: int, epoch_size: int) -> int:
    r"""
    The examples' memory at its peak, in bytes, of $n$ examples of $k$ keys: making them
    takes 16 bytes a number (the random numbers, their sort and its indices); training
    keeps them, 8 bytes a number, and shuffles an epoch (`batches`), a repeat of up to
    $n + E$ rows and its shuffled copy, $E$ = `epoch_size`. $8 k (3 n + 2 E)$ bytes
    bounds both.
    """
    return 8 * k * (3 * n_examples(k, max_examples) + 2 * epoch_size)


# The numbers a training step holds for each pair of a query and a key-value node of a
# batch, per feature (GATv2 adds every pair's two vectors, and the edge lists gather a
# message per pair) or, for GAT's dense layer, per head (one score a pair and head).
# GATv2's dense grid is the pair sums, their LeakyReLU and a gradient of each. A step's
# peak stays below these estimates, as the tests check against what autograd saves.
PAIR_NUMBERS = {('gatv2', 'dense'): 4, ('gat', 'dense'): 6, ('gatv2', 'edges'): 6,
                ('gat', 'edges'): 5}


def training_step_bytes(k: int, layer: str, n_heads: int, d_model: int, impl: str,
                        n_graphs: int) -> int:
    r"""
    The peak memory of a training step on `n_graphs` graphs of size $k$, in bytes: the
    pairs' numbers of `PAIR_NUMBERS`, the `[B, k, k]` logits, their log-softmax and
    gradients, the vectors of every pair of a key and a value (`[k, k + 1, d]`: their sum,
    its ReLU and gradients), and the weights with their gradients and Adam's moments.
    """
    pairs = n_graphs * k * k
    width = n_heads if (layer, impl) == ('gat', 'dense') else d_model
    numbers = PAIR_NUMBERS[layer, impl] * pairs * width + 4 * pairs
    if impl == 'edges':
        # The edge index, two `int64` an edge, and the scores and coefficients per head
        numbers += pairs * (4 + 4 * n_heads)
    numbers += 4 * k * (k + 1) * d_model
    numbers += 4 * (2 * (k + 1) * d_model + k * d_model + 2 * d_model * d_model)
    return 4 * numbers


def union_edge_index(n_graphs: int, k: int) -> torch.Tensor:
    r"""
    The same graphs as one graph, their disjoint union, as an edge list `[2, B k^2]`:
    graph $b$ has the nodes $2kb, \dots, 2kb + 2k - 1$, and its edge $b k^2 + i k + j$
    is $s_j \to q_i$.
    """
    i = torch.arange(k).repeat_interleave(k)
    j = torch.arange(k).repeat(k)
    one_graph = torch.stack([k + j, i])
    offsets = torch.arange(n_graphs) * 2 * k
    return (one_graph[:, None, :] + offsets[None, :, None]).reshape(2, -1)


class LookupModel(nn.Module):
    r"""
    ## The model

    The authors' model, with $d = 128$:
    $$h_n = \text{ReLU}\big(E_\text{key}[\text{key}_n]
                           + E_\text{value}[\text{value}_n]\big)$$
    one attention layer ($H$ heads of $d / H$ features concatenated, no bias, no dropout;
    GATv2 with $W_l = W_r$), and a linear readout $\hat{y}_i = U h'_{q_i}$ on the queries.
    """

    def __init__(self, k: int, layer: str = 'gatv2', n_heads: int = 1, d_model: int = 128,
                 impl: str = 'dense'):
        super().__init__()
        if layer not in LAYERS:
            raise ValueError(f'layer must be one of {sorted(LAYERS)}, got {layer!r}')
        if impl not in ('dense', 'edges'):
            raise ValueError(f"impl must be 'dense' or 'edges', got {impl!r}")
        self.k, self.impl = k, impl
        # $E_\text{key}$ and $E_\text{value}$: the ids $0, \dots, k - 1$ and the empty
        # value $k$
        self.key_embedding = nn.Embedding(k + 1, d_model)
        self.value_embedding = nn.Embedding(k + 1, d_model)
        # The attention layer; the edge-list twin has the very same parameters
        options = {'share_weights': True} if layer == 'gatv2' else {}
        if layer == 'gatv2' and impl == 'dense':
            # Many small graphs at once: the pair sums by broadcasting, without copies
            options['broadcast'] = True
        layers = LAYERS if impl == 'dense' else EDGE_LAYERS
        self.attention = layers[layer](d_model, d_model, n_heads, is_concat=True,
                                       dropout=0.0, bias=False, **options)
        # The readout $U$, from $d$ features to the $k$ values
        self.readout = nn.Linear(d_model, k, bias=False)

    def forward(self, perms: torch.Tensor, return_attention: bool = False):
        r"""
        The logits of every query of the graphs `perms`, `[B, k]`: `[B, k, k]`, and with
        `return_attention` the attention $\alpha_{ij}$ of query $q_i$ on key-value node
        $s_j$, `[B, k, k, n_heads]`.
        """
        keys = torch.arange(self.k, device=perms.device)
        # $h = \text{ReLU}(E_\text{key}[\text{key}] + E_\text{value}[\text{value}])$ for
        # every pair of a key and a value, `[k, k + 1, d]`: a node's vector depends on its
        # pair only.
        h_pair = torch.relu(self.key_embedding.weight[:self.k, None]
                            + self.value_embedding.weight[None, :])
        # The queries $q_0, \dots, q_{k-1}$ are the same nodes in every graph, key $i$ and
        # the empty value $k$: `[k, d]`, shared by the batch.
        h_query = h_pair[:, self.k]
        # The key-value nodes $s_j$, key $j$ and value $\pi(j)$: `[B, k, d]`
        h_key = h_pair[keys, perms]
        if self.impl == 'dense':
            # The dense layer on the batch of bipartite graphs: the key-value nodes send, the
            # queries receive. Every query attends to every key-value node, so there is no
            # adjacency to mask (`None`). `h` is `[B, k, d]`, `attention` `[B, k, k, n_heads]`.
            h, attention = self.attention((h_key, h_query), None, return_attention=True)
        else:
            h, attention = self.edge_list_forward(h_query, h_key)
        # $\hat{y}_i = U h'_{q_i}$ for the queries, `[B, k, k]`
        logits = self.readout(h)
        if return_attention:
            return logits, attention
        return logits

    def edge_list_forward(self, h_query: torch.Tensor, h_key: torch.Tensor):
        """The edge-list layer on the disjoint union of the graphs: queries, then keys."""
        n_graphs, k, d_model = h_key.shape
        h = torch.cat([h_query.expand(n_graphs, k, d_model), h_key], dim=1)
        edge_index = union_edge_index(n_graphs, k).to(h.device)
        h, attention = self.attention(h.reshape(-1, d_model), edge_index,
                                      return_attention=True)
        return h.view(n_graphs, 2 * k, -1)[:, :k], attention.view(n_graphs, k, k, -1)


def batches(perms: torch.Tensor, batch_size: int,
            generator: Optional[torch.Generator] = None,
            epoch_size: int = 0) -> Iterable[torch.Tensor]:
    """
    The examples in batches of `batch_size` graphs; shuffled when given a `generator`.
    With `epoch_size`, a smaller set of examples is repeated to at least that many graphs,
    so that a small $k$, with few examples, gets as many updates per epoch as a large one.
    """
    if len(perms) < epoch_size:
        perms = perms.repeat(math.ceil(epoch_size / len(perms)), 1)
    if generator is not None:
        perms = perms[torch.randperm(len(perms), generator=generator)]
    for start in range(0, len(perms), batch_size):
        yield perms[start:start + batch_size]


@torch.no_grad()
def evaluate(model: LookupModel, perms: torch.Tensor, batch_size: int,
             device: torch.device) -> float:
    """The fraction of query nodes answered correctly on the examples `perms`."""
    model.eval()
    correct = 0
    for batch in batches(perms, batch_size):
        batch = batch.to(device)
        correct += (model(batch).argmax(dim=-1) == batch).sum().item()
    return correct / perms.numel()


def train_epoch(model: LookupModel, optimizer: torch.optim.Optimizer, perms: torch.Tensor,
                batch_size: int, generator: torch.Generator, device: torch.device,
                wrap: Callable = lambda batches, n: batches,
                epoch_size: int = 0) -> tuple[float, float]:
    """
    ## One pass over the training graphs

    In shuffled batches, with the gradient norm clipped to 1. Returns the running loss and
    accuracy of the pass, as in the authors' code (each batch scored before its update).
    `wrap` may wrap the batches, for a progress bar.
    """
    model.train()
    total_loss, correct, n_queries = 0.0, 0, 0
    n_graphs = len(perms) * max(1, math.ceil(epoch_size / len(perms)))
    for batch in wrap(batches(perms, batch_size, generator, epoch_size),
                      math.ceil(n_graphs / batch_size)):
        batch = batch.to(device)
        # The label of query $q_i$ is $\pi(i)$: the batch of permutations itself
        logits = model(batch)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), batch.flatten())
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        total_loss += loss.item() * batch.numel()
        correct += (logits.argmax(dim=-1) == batch).sum().item()
        n_queries += batch.numel()
    return total_loss / n_queries, correct / n_queries


def train(k: int, layer: str = 'gatv2', n_heads: int = 1, epochs: int = 50,
          seed: int = 0,
          max_examples: int = 32000, batch_size: int = 32, learning_rate: float = 3e-3,
          patience: int = 10, lr_patience: int = 5, min_progress: float = 0.05,
          d_model: int = 128,
          device: str = 'cpu', impl: str = 'dense', epoch_size: int = 5000,
          on_epoch: Optional[Callable] = None,
          wrap_epochs: Callable = range,
          wrap_batches: Callable = lambda batches, n: batches) -> dict:
    """
    ## Training

    Trains one model on the task of size `k`. Adam; an epoch counts as *progress* when
    it removes at least the fraction `min_progress` of the training errors that remained
    after the last epoch that made progress. The learning rate is halved once more than
    `lr_patience` epochs in a row made no progress (`ReduceLROnPlateau`'s count); training stops at 100 % training accuracy or after `patience`
    epochs without progress, and keeps the weights of the epoch with the best training
    accuracy. Measuring progress on the errors left makes the same rule patient near
    100 %, where a model that is fitting removes few errors per epoch, and quick to give
    up on a model stuck at chance that gains a fraction of a percent per epoch. The test
    set is evaluated after every epoch for the curves, and never used for a decision.

    Returns the settings, the numbers of training and test graphs, the epochs run and the
    selected one (`best_epoch`, from 0), the seconds of training, the `train_accuracy` and
    `test_accuracy` of the selected weights, the per-epoch `history`, the trained `model`
    and its `task`. `epoch_size` repeats a small training set within an epoch (see
    `batches`). `on_epoch(epoch, record)` is called after every epoch (for labml's
    tracker).
    """
    for name, value in (('epochs', epochs), ('batch_size', batch_size),
                        ('patience', patience), ('lr_patience', lr_patience)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got {value!r}')
    if not 0 <= min_progress < 1:
        raise ValueError(f'min_progress must be in [0, 1), got {min_progress!r}')
    task = make_task(k, seed, max_examples)
    if len(task.train) == 0 or len(task.test) == 0:
        raise ValueError(f'k = {k} with max_examples = {max_examples} gives '
                         f'{len(task.train)} training and {len(task.test)} test graphs; '
                         f'both must be non-empty: use more examples')
    device = torch.device(device)

    # The initial weights come from `seed`, without touching the caller's random state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LookupModel(k, layer, n_heads, d_model, impl)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    # The scheduler watches the training error, so that its relative threshold is
    # `min_progress` of the errors left
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode='min', factor=0.5, patience=lr_patience, threshold=min_progress)
    # The order of the training graphs in every epoch comes from `seed` too
    shuffle = torch.Generator().manual_seed(seed)

    history = []
    best_accuracy, best_epoch, best_state = -1.0, 0, None
    # The training error of the last epoch that made progress, and that epoch
    progress_error, progress_epoch = math.inf, 0
    start = time.perf_counter()
    for epoch in wrap_epochs(epochs):
        learning_rate_used = optimizer.param_groups[0]['lr']
        loss, train_accuracy = train_epoch(model, optimizer, task.train, batch_size,
                                           shuffle, device, wrap_batches, epoch_size)
        test_accuracy = evaluate(model, task.test, batch_size, device)
        record = {'epoch': epoch, 'loss': loss, 'train_accuracy': train_accuracy,
                  'test_accuracy': test_accuracy, 'learning_rate': learning_rate_used}
        history.append(record)
        if on_epoch is not None:
            on_epoch(epoch, record)
        # Model selection, learning rate and stopping on the training accuracy alone
        if train_accuracy > best_accuracy:
            best_accuracy, best_epoch = train_accuracy, epoch
            best_state = copy.deepcopy(model.state_dict())
        if 1 - train_accuracy < (1 - min_progress) * progress_error:
            progress_error, progress_epoch = 1 - train_accuracy, epoch
        scheduler.step(1 - train_accuracy)
        if train_accuracy == 1.0 or epoch - progress_epoch >= patience:
            break
    seconds = time.perf_counter() - start

    # The final accuracy of the selected weights, on every training and test graph
    model.load_state_dict(best_state)
    return {'k': k, 'layer': layer, 'n_heads': n_heads, 'seed': seed, 'impl': impl,
            'epoch_size': epoch_size, 'min_progress': min_progress,
            'n_train': len(task.train), 'n_test': len(task.test),
            'epochs': len(history), 'best_epoch': best_epoch,
            'seconds': round(seconds, 2),
            'train_accuracy': evaluate(model, task.train, batch_size, device),
            'test_accuracy': evaluate(model, task.test, batch_size, device),
            'history': history, 'model': model, 'task': task}


# The most numbers a dense way of `time_layers` may put on its grid of node pairs
DENSE_LIMIT = 2 ** 28


def time_layers(n_nodes: int, n_graphs: int, density: float, d_model: int = 64,
                n_heads: int = 1, repeats: int = 3, seed: int = 0) -> dict:
    r"""
    ## Which layer when

    One forward and backward pass of one GATv2 layer over `n_graphs` random graphs of
    `n_nodes` nodes each, every node pair an edge with probability `density` (self loops
    always), computed four ways with the same parameters:

    * `dense_batched`: the dense layer on each graph, mapped over the batch with `vmap`
      (not run for a single graph, where it is `dense_single`);
    * `dense_single`: the dense layer on one graph, the union of all of them, with its
      block-diagonal $N \times N$ adjacency, $N$ = `n_nodes * n_graphs`;
    * `edges`: the edge-list layer on the union;
    * `lean`: the [memory-lean edge-list layer](lean.html) on the union.

    For each way, `seconds` is the fastest of `repeats` passes in processor time (which a
    busy machine disturbs less than wall-clock time), and `saved_bytes` the memory that
    autograd keeps from the forward pass for the backward pass. A dense way whose
    $N \times N$ grid of pairs would hold more than `DENSE_LIMIT` numbers is not run.
    """
    generator = torch.Generator().manual_seed(seed)
    dense = GraphAttentionV2Layer(d_model, d_model, n_heads, dropout=0.0)
    edges = EdgeGraphAttentionV2Layer(d_model, d_model, n_heads, dropout=0.0)
    lean = LeanGraphAttentionV2Layer(d_model, d_model, n_heads, dropout=0.0)
    edges.load_state_dict(dense.state_dict())
    lean.load_state_dict(dense.state_dict())
    h = torch.randn(n_graphs, n_nodes, d_model, generator=generator)
    n_total = n_graphs * n_nodes
    graph, target, source = random_graphs(n_graphs, n_nodes, density, generator)
    # The union: graph $b$ has the nodes $b n, \dots, b n + n - 1$
    edge_index = torch.stack([graph * n_nodes + source, graph * n_nodes + target])

    def adjacency():
        adj = torch.zeros(n_graphs, n_nodes, n_nodes, dtype=torch.bool)
        adj[graph, target, source] = True
        return adj

    ways = {'edges': lambda x: edges(x.reshape(n_total, d_model), edge_index),
            'lean': lambda x: lean(x.reshape(n_total, d_model), edge_index)}
    if n_graphs > 1 and n_nodes ** 2 * n_graphs * d_model <= DENSE_LIMIT:
        adj = adjacency()
        ways['dense_batched'] = lambda x: torch.func.vmap(dense)(x, adj)
    if n_total ** 2 * d_model <= DENSE_LIMIT:
        union = torch.block_diag(*adjacency())
        ways['dense_single'] = lambda x: dense(x.reshape(n_total, d_model), union)
    seconds, saved_bytes = {}, {}
    for name, forward in ways.items():
        seconds[name], saved_bytes[name] = time_backward(forward, h, repeats)
    return {'n_nodes': n_nodes, 'n_graphs': n_graphs, 'density': density,
            'n_edges': edge_index.shape[1], 'd_model': d_model, 'n_heads': n_heads,
            'seconds': seconds, 'saved_bytes': saved_bytes,
            'fastest': min(seconds, key=seconds.get),
            'leanest': min(saved_bytes, key=saved_bytes.get)}


# The four ways of `time_layers`, as its report names them
WAYS = {'dense_batched': 'dense batched', 'dense_single': 'dense one graph',
        'edges': 'edges', 'lean': 'lean'}


def describe_layers(row: dict) -> str:
    """
    A row of `time_layers` in one line, as `--which-layer` prints it while it measures: the
    graphs, each way's processor time in milliseconds and the memory it keeps for the
    backward pass in MiB, and which way is the fastest and which the leanest.
    """
    def cells(values: dict, scale: float) -> str:
        return ', '.join(f'{WAYS[way]} {values[way] * scale:.2f}' for way in WAYS
                         if way in values)
    return (f"{number_of(row['n_graphs'], 'graph')} of {row['n_nodes']:,} nodes, density "
            f"{row['density']:g}, {row['n_edges']:,} edges: ms forward and backward: "
            f"{cells(row['seconds'], 1000)} (fastest: {WAYS[row['fastest']]}); "
            f"MiB kept for backward: {cells(row['saved_bytes'], 2 ** -20)} "
            f"(leanest: {WAYS[row['leanest']]})")


def random_graphs(n_graphs: int, n_nodes: int, density: float,
                  generator: torch.Generator):
    """
    The edges of `n_graphs` random graphs, as the graph, target and source of each:
    every ordered pair of nodes with probability `density`, and every self loop.
    Drawn on the grid of all pairs when it has at most `2 ** 24` of them, otherwise pair
    by pair, which for the large sparse graphs it is used for draws far fewer numbers.
    """
    if n_nodes ** 2 * n_graphs <= 2 ** 24:
        adj = torch.rand(n_graphs, n_nodes, n_nodes, generator=generator) < density
        adj |= torch.eye(n_nodes, dtype=torch.bool)
        return adj.nonzero(as_tuple=True)
    # As many random pairs as the density asks for; a pair drawn twice counts once
    n_pairs = round(density * n_graphs * n_nodes ** 2)
    pairs = torch.randint(n_graphs * n_nodes ** 2, (n_pairs,), generator=generator)
    loops = (torch.arange(n_graphs)[:, None] * n_nodes ** 2
             + torch.arange(n_nodes) * (n_nodes + 1)).flatten()
    pairs = torch.cat([pairs, loops]).unique()
    return pairs // n_nodes ** 2, pairs // n_nodes % n_nodes, pairs % n_nodes


def time_backward(forward: Callable, h: torch.Tensor, repeats: int) -> tuple[float, int]:
    """
    The fastest of `repeats` forward and backward passes of `forward` on `h`, in seconds
    of processor time, and the bytes of the tensors autograd saved for the backward pass
    (each storage counted once).
    """
    best, saved = math.inf, {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    for _ in range(repeats):
        x = h.clone().requires_grad_()
        saved.clear()
        start = time.process_time()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            y = forward(x)
        y.sum().backward()
        best = min(best, time.process_time() - start)
    return round(best, 5), sum(saved.values())
