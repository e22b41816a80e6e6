"""The control for "stored": the probes on people the model never read."""

from __future__ import annotations

import json

from lib import cli
from lib.core import data as D
from lib.runs import pipeline as P
from lib.runs.matrix import RunPaths
from lib.runs.profiles import get_profile, world_for


def test_never_read_people_are_outside_the_world_and_absent_for_the_whole_data(real_data):
    world = D.mini_world(real_data, 40, 20, 0)
    people = D.unread_people(real_data, world, 25)
    assert len(people) == 25 and len({q.name for q in people}) == 25
    corpus = set(world.corpus)
    assert all(real_data.biographies[q.name] not in corpus and q.place for q in people)
    assert people == D.unread_people(real_data, world, 25)  # seeded
    assert D.unread_people(real_data, D.full_world(real_data), 25) == []


def test_pretraining_probes_never_read_people_and_the_late_addition_matches(scratch, capsys):
    record = P.run("pretrain", "smoke", progress=False)
    n_dev = get_profile("smoke").mini_world[1]
    unread = record["metrics"]["probe_unread"]
    assert unread["name_gold_total"] == n_dev
    paths = RunPaths.of("smoke", "pretrain-vanilla-seed0")
    details = json.loads(paths.details.read_text())
    world_names = {q.name for q in world_for(get_profile("smoke"), D.load()).dev}
    assert len(details["unread"]) == n_dev and not world_names & {r["name"] for r in details["unread"]}

    # A record made before the probe existed gets the same numbers added later.
    del record["metrics"]["probe_unread"]
    P.write_record(record)
    paths.details.write_text(json.dumps({"probe": details["probe"]}))
    assert cli.main(["probe-unread", "--profile", "smoke", "--device", "cpu"]) == 0
    again = P.read_record(paths.record)
    assert again["metrics"]["probe_unread"] == unread
    assert set(again["probe_unread_added"]) == {"git_commit", "created", "torch_version"}
    assert json.loads(paths.details.read_text())["unread"] == details["unread"]
    assert "never-read people, name probe" in capsys.readouterr().out

    paths.weights.unlink()
    assert cli.main(["probe-unread", "--profile", "smoke", "--device", "cpu"]) == 2
    assert "weights" in capsys.readouterr().err


def test_the_probe_finding_weighs_the_read_people_against_the_never_read(scratch):
    from lib import report

    record = P.run("pretrain", "smoke", progress=False)
    u = record["metrics"]["probe_unread"]
    root = scratch / "results"
    sentence = report.findings("smoke", root)["probe"]
    assert (f"on people it never read it finds {u['name_gold_correct']}/{u['name_gold_total']}"
            in sentence) and "Fisher p" in sentence and "than on people it never read" in sentence
    table = report.runs_table([record])
    assert table.loc[0, "never-read people (name / biography)"] == (
        f"{u['name_gold_correct']}/{u['name_gold_total']} / {u['bio_gold_correct']}/{u['bio_gold_total']}")
