"""The profiles' table: what each one is, and how it departs from the classic recipe."""

from __future__ import annotations

from lib.core.model import GPT
from lib.runs.departures import (
    DEPARTURE_REASONS,
    TRAINING_CODE_SETTINGS,
    departed_settings,
    recipe_departures,
    training_code_departures,
)
from lib.runs.pipeline import model_config
from lib.runs.profiles import (
    PROFILES,
    get_profile,
    world_for,
)


def test_the_classic_profile_departs_from_nothing():
    assert recipe_departures(PROFILES["full"]) == []


def test_cpu_profile_is_the_whole_data_at_the_classic_size(real_data):
    cpu, full = get_profile("cpu"), get_profile("full")
    assert (cpu.n_layer, cpu.n_head, cpu.n_embd, cpu.block_size) == (4, 8, 256, 128)
    world = world_for(cpu, real_data)
    assert (len(world.train), len(world.dev)) == (2000, 500)
    assert world.description == world_for(full, real_data).description
    vocab = len(real_data.vocab)
    assert GPT(model_config(cpu, vocab, "vanilla")).num_parameters() == \
        GPT(model_config(full, vocab, "vanilla")).num_parameters()


def test_every_departure_is_listed_with_its_reason():
    lines = recipe_departures(PROFILES["cpu"])
    assert lines == [
        "attn_dropout 0.1 -> 0 (" + DEPARTURE_REASONS["attn_dropout"] + ")",
        "epochs 650 -> 400 in pretraining (" + DEPARTURE_REASONS["epochs"] + ")",
        "final_epochs 200 -> 400 in pretraining (" + DEPARTURE_REASONS["final_epochs"] + ")",
        "clamp_schedule off -> on in pretraining (" + DEPARTURE_REASONS["clamp_schedule"] + ")",
        "length_grouped off -> on in every phase (" + DEPARTURE_REASONS["length_grouped"] + ")",
        "shuffle off -> on in every phase (" + DEPARTURE_REASONS["shuffle"] + ")",
        "decay_all_but_biases on -> off in every phase ("
        + DEPARTURE_REASONS["decay_all_but_biases"] + ")",
        "cpu_bf16 off -> on in every phase (" + DEPARTURE_REASONS["cpu_bf16"] + ")",
        "final_epochs 293.7 -> 200 in finetuning from scratch and finetuning after pretraining ("
        + DEPARTURE_REASONS["final_epochs"] + ")",
        "scaled_residual_init off -> on (" + DEPARTURE_REASONS["scaled_residual_init"] + ")",
    ]
    for name in ("smoke", "mini", "mini-classic", "mini-classic-grouped", "mini-ungrouped"):
        assert all("(changed)" not in line for line in recipe_departures(PROFILES[name])), name


def test_cpu32_is_the_classic_recipe_but_for_what_makes_it_affordable():
    assert recipe_departures(PROFILES["cpu32"]) == [
        "attn_dropout 0.1 -> 0 (" + DEPARTURE_REASONS["attn_dropout"] + ")",
        "length_grouped off -> on in every phase (" + DEPARTURE_REASONS["length_grouped"] + ")",
        "shuffle off -> on in every phase (" + DEPARTURE_REASONS["shuffle"] + ")",
        "decay_all_but_biases on -> off in every phase ("
        + DEPARTURE_REASONS["decay_all_but_biases"] + ")",
        "epoch_token_mean off -> on in every phase (" + DEPARTURE_REASONS["epoch_token_mean"] + ")",
        "final_epochs 293.7 -> 200 in finetuning from scratch and finetuning after pretraining ("
        + DEPARTURE_REASONS["final_epochs"] + ")",
        "scaled_residual_init off -> on (" + DEPARTURE_REASONS["scaled_residual_init"] + ")",
    ]


def test_cpu32_classic_is_the_classic_setting_but_for_the_attention_dropout():
    assert recipe_departures(PROFILES["cpu32-classic"]) == [
        "attn_dropout 0.1 -> 0 (" + DEPARTURE_REASONS["attn_dropout"] + ")"]


def test_departed_settings_name_each_departure_once_in_the_listed_order():
    for profile in PROFILES.values():
        names = [line.split(" ", 1)[0] for line in recipe_departures(profile)]
        assert departed_settings(profile) == list(dict.fromkeys(names)), profile.name
    # The training code: the CPU profiles other than cpu32-classic do not share it.
    assert set(TRAINING_CODE_SETTINGS) <= set(departed_settings(PROFILES["cpu32"]))
    assert not set(TRAINING_CODE_SETTINGS) & set(departed_settings(PROFILES["cpu32-classic"]))


def test_training_code_departures_name_only_the_starter_codes_training_settings():
    assert training_code_departures(PROFILES["cpu32"]) == list(TRAINING_CODE_SETTINGS)
    assert training_code_departures(PROFILES["cpu32-classic"]) == []
    assert training_code_departures(PROFILES["full"]) == []
    # mini-classic-grouped keeps the starter code's decay and initialisation.
    assert training_code_departures(PROFILES["mini-classic-grouped"]) == ["shuffle"]
    assert training_code_departures(PROFILES["mini-classic"], reference="mini") == list(
        TRAINING_CODE_SETTINGS)


def test_mini_classic_differs_from_mini_only_in_the_training_code():
    assert recipe_departures(PROFILES["mini-classic"], reference="mini") == [
        "length_grouped on -> off in every phase (" + DEPARTURE_REASONS["length_grouped"] + ")",
        "shuffle on -> off in every phase (" + DEPARTURE_REASONS["shuffle"] + ")",
        "decay_all_but_biases off -> on in every phase ("
        + DEPARTURE_REASONS["decay_all_but_biases"] + ")",
        "scaled_residual_init on -> off (" + DEPARTURE_REASONS["scaled_residual_init"] + ")",
    ]
    assert recipe_departures(PROFILES["mini-classic"], reference="mini", markdown=True,
                             reasons=False) == [
        "`length_grouped`: on → off in every phase", "`shuffle`: on → off in every phase",
        "`decay_all_but_biases`: off → on in every phase", "`scaled_residual_init`: on → off"]
    assert recipe_departures(PROFILES["mini-ungrouped"], reference="mini") == [
        "length_grouped on -> off in every phase (" + DEPARTURE_REASONS["length_grouped"] + ")"]
    assert recipe_departures(PROFILES["mini-classic-grouped"], reference="mini") == [
        "decay_all_but_biases off -> on in every phase ("
        + DEPARTURE_REASONS["decay_all_but_biases"] + ")",
        "scaled_residual_init on -> off (" + DEPARTURE_REASONS["scaled_residual_init"] + ")",
    ]
