"""The sampling plan (stages.core.plan) of real pack files: the order, the coverage target, the shards, a
missing preset, a URL that escapes public/, and the shard keys that decide which sample tasks doit re-runs."""
from __future__ import annotations

import os

import pytest
from packs import make_pack

from stages.core.contracts import Manifest, ManifestPair, read_json, write_json
from stages.core.errors import ContractError
from stages.core.plan import plan_pack
from stages.core.settings import SampleSettings
from stages.core.workspace import Workspace
from stages.render.versions import KEY_VERSIONS


def plan(workspace: Workspace, pack: str = "p", **settings):
    return plan_pack(workspace, pack, SampleSettings(**{"shard_size": 4, **settings}), KEY_VERSIONS)


def pair_numbers(planned) -> list[int]:
    return [p.pair for p in planned]


@pytest.fixture(scope="module")
def sized(tmp_path_factory) -> Workspace:
    """Packs of 10 and 100 pairs."""
    workspace = Workspace(tmp_path_factory.mktemp("plan-ws"))
    make_pack(workspace, "ten", 10)
    make_pack(workspace, "hundred", 100)
    return workspace


def test_order_is_a_seeded_shuffle(sized):
    order = pair_numbers(plan(sized, "hundred").ordered)
    assert sorted(order) == list(range(100))
    assert order == pair_numbers(plan(sized, "hundred").ordered), "the same seed gives the same order"
    assert order != pair_numbers(plan(sized, "hundred", shuffle_seed=8).ordered)
    # a shuffle, not a sort, a reversal or an interleave: about half the steps go up
    rises = sum(later > earlier for earlier, later in zip(order, order[1:]))
    assert 35 <= rises <= 64, rises
    # so any prefix is a fair sample of the pack (what TargetCoverage takes)
    first_quarter = order[:25]
    assert all(any(low <= pair < low + 50 for pair in first_quarter) for low in (0, 50))


def test_adding_pairs_keeps_the_order_of_the_others(workspace):
    make_pack(workspace, "p", 30)
    before = pair_numbers(plan(workspace).ordered)
    make_pack(workspace, "p", 40)  # the same 30 pairs and 10 more
    after = pair_numbers(plan(workspace).ordered)
    assert [pair for pair in after if pair < 30] == before
    new_places = [after.index(pair) for pair in range(30, 40)]
    assert min(new_places) < 20, "new pairs slot in throughout, not only at the end"


@pytest.mark.parametrize("pack, coverage, target", [
    ("ten", 1.0, 10), ("ten", 0.5, 5), ("ten", 0.71, 8), ("ten", 0.01, 1), ("hundred", 0.29, 29),
    ("hundred", 0.07, 7), ("hundred", 0.14, 14),  # 0.07 * 100 is 7.000000000000001 in floating point
    ("hundred", 0.999, 100)])
def test_target_is_the_coverage_rounded_up(sized, pack, coverage, target):
    planned = plan(sized, pack, target_coverage=coverage)
    assert planned.target == target
    assert [p for shard in planned.shards for p in shard] == planned.ordered[:target], \
        "the target is the first pairs of the order"


@pytest.mark.parametrize("pack, settings, sizes", [
    ("ten", {"shard_size": 3}, [3, 3, 3, 1]),
    ("ten", {"shard_size": 3, "target_coverage": 0.5}, [3, 2]),
    ("ten", {"shard_size": 10}, [10]),
    ("ten", {"shard_size": 20}, [10]),
    ("hundred", {"shard_size": SampleSettings.shard_size}, [50, 50]),
    ("hundred", {"shard_size": SampleSettings.shard_size, "workers": 16}, [50, 50]),  # workers do not cut shards
])
def test_shards_cut_the_target_in_order(sized, pack, settings, sizes):
    planned = plan(sized, pack, **settings)
    assert [len(shard) for shard in planned.shards] == sizes
    assert [p for shard in planned.shards for p in shard] == planned.ordered[:planned.target]


def test_a_missing_preset_is_planned_with_missing(workspace):
    manifest = make_pack(workspace, "p", 4).manifest
    gone = workspace.public / manifest.pairs[2].bgUrl.lstrip("/")
    gone.unlink()
    planned = plan(workspace)
    by_pair = {p.pair: p for p in planned.ordered}
    assert by_pair[2].missing == [gone.resolve()] and by_pair[2].bg_hash == "" and by_pair[2].fg_hash
    assert not any(by_pair[pair].missing for pair in (0, 1, 3))
    assert 2 in pair_numbers(p for shard in planned.shards for p in shard), "its shard task reports it"


@pytest.mark.parametrize("url, problem", [
    ("/presets/../../secret.json", "escapes public/"),
    ("/presets/p/fg/..\\..\\..\\secret.json", "escapes public/"),
    ("/presets/p/fg/outside.json", "escapes public/ (via a link)"),
])
def test_a_url_escaping_public_is_refused(workspace, url, problem):
    manifest = make_pack(workspace, "p", 2).manifest
    secret = workspace.root / "secret.json"
    write_json(secret, {"not": "a preset of this pack"})
    (workspace.pack_dir("p") / "fg" / "outside.json").symlink_to(secret)
    escaping = ManifestPair(1, url, manifest.pairs[1].bgUrl)
    write_json(manifest.path, Manifest(manifest.path, "p", [manifest.pairs[0], escaping]).to_json())
    with pytest.raises(ContractError) as caught:
        plan(workspace)
    assert problem in str(caught.value)
    assert caught.value.where == f"{manifest.path} pair 1", "the error says which pair of which manifest"


def test_a_manifest_of_another_pack_is_refused(workspace):
    manifest = make_pack(workspace, "p", 2).manifest
    write_json(manifest.path, Manifest(manifest.path, "q", manifest.pairs).to_json())
    with pytest.raises(ContractError, match="pack is 'q' but the file is in the folder of pack 'p'"):
        plan(workspace)


def test_shard_key_changes_exactly_when_a_pairs_file_or_a_pixel_setting_changes(workspace):
    make_pack(workspace, "p", 6)

    def shard_keys(**settings) -> list[str]:
        planned = plan(workspace, shard_size=2, **settings)
        return [planned.shard_key(index) for index in range(len(planned.shards))]

    before = shard_keys()
    assert len(set(before)) == 3
    preset = plan(workspace, shard_size=2).shards[1][0].fg_path
    original = preset.read_bytes()
    preset.write_bytes(original)  # rewritten, same bytes
    os.utime(preset, (1, 1))      # and an old timestamp: content decides, not time
    assert shard_keys() == before

    data = read_json(preset)
    data["baseVals"]["zoom"] += 0.5
    write_json(preset, data)
    edited = shard_keys()
    assert edited[1] != before[1] and edited[0] == before[0] and edited[2] == before[2]
    preset.write_bytes(original)
    assert shard_keys() == before

    for pixels in ({"width": 96}, {"frames": 30}, {"fg_opacity": 0.5}, {"min_luma": 0.1}):
        changed = shard_keys(**pixels)
        assert all(new != old for new, old in zip(changed, before)), pixels
    for run in ({"workers": 3}, {"max_hours": 1.0}, {"reload_every": 5}, {"pair_timeout_s": 5.0}):
        assert shard_keys(**run) == before, run
