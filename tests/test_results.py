"""
Recorded results: the README quotes them, and a test fails when the two disagree.
"""

import json
import re

from conftest import REPO
from labml_gat import results


def test_readme_tables_match_their_records():
    """Every marked block of the README is exactly what its records render."""
    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    blocks = list(results.MARKERS.finditer(readme))
    assert blocks, 'the README quotes no recorded result'
    assert readme == results.update(readme), (
        'README.md and experiments/results/ disagree: run python -m labml_gat.results README.md')


def test_every_table_names_records_that_exist():
    for name, table in results.TABLES.items():
        assert table(results.RESULTS).startswith('|'), name


def test_a_changed_record_changes_the_readme(tmp_path):
    """The check above would see a stale number: edit a record and the rendering changes."""
    for path in results.RESULTS.glob('*.json'):
        (tmp_path / path.name).write_text(path.read_text(encoding='utf-8'), encoding='utf-8')
    text = '<!-- results: cora -->\n<!-- end results -->'
    before = results.update(text, tmp_path)
    record = json.loads((tmp_path / 'cora_seeds10.json').read_text(encoding='utf-8'))
    record['values']['test_mean'] += 1
    (tmp_path / 'cora_seeds10.json').write_text(json.dumps(record), encoding='utf-8')
    assert results.update(text, tmp_path) != before


def test_records_say_how_they_were_made():
    for path in results.RESULTS.glob('*.json'):
        record = json.loads(path.read_text(encoding='utf-8'))
        assert {'command', 'date', 'machine', 'versions'} <= set(record), path.name
        assert re.match(r'\d{4}-\d{2}-\d{2}', record['date']), path.name
        # A command may set environment variables first (`OMP_NUM_THREADS=1 python ...`)
        command = re.sub(r'^([A-Z_]+=\S+ )+', '', record['command'])
        assert command.startswith(('python ', 'bash ', 'torchrun ')), path.name


def test_record_from_a_summary(tmp_path):
    summary = {'test_accuracy': {'mean': 82.5, 'std': 0.5, 'n': 2},
               'val_accuracy': {'mean': 81.0, 'std': 0.1, 'n': 2},
               'seconds': 10.0, 'wall_seconds': 6.0, 'jobs': 2, 'load_average': 0.5,
               'runs': [{'seed': s, 'epochs': 5, 'best_epoch': 3, 'val_accuracy': 0.81,
                         'test_accuracy': 0.825, 'history': []} for s in (0, 1)]}
    path = results.record('x', 'python experiments/cora.py --seeds 2',
                          results.from_summary(summary), tmp_path)
    record = results.load('x', tmp_path)
    assert path.name == 'x.json' and record['values']['test_mean'] == 82.5
    assert [r['seed'] for r in record['values']['per_seed']] == [0, 1]
    assert 'history' not in record['values']['per_seed'][0]
