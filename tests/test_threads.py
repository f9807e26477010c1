"""The CPU threads an evaluation uses, as every metrics row records them: torch's follow the job's
threads (Snakemake caps them at --cores) unless evaluation.threads pins them, the Rust
tokenizer's too when pinned (RAYON_NUM_THREADS), and what the tokenizer uses is read back from
the same settings it reads."""

from __future__ import annotations

import os

import pytest
import torch

from glueperf.evaluation import tokenizer_threads
from glueperf.infra.evaluate_job import gpu_tokenizer_threads, use_threads


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"RAYON_NUM_THREADS": "3"}, 3),
        ({"RAYON_NUM_THREADS": "3", "TOKENIZERS_PARALLELISM": "false"}, 1),
        ({"TOKENIZERS_PARALLELISM": "0"}, 1),
        ({"RAYON_NUM_THREADS": "0"}, len(os.sched_getaffinity(0))),  # rayon's "default"
        ({}, len(os.sched_getaffinity(0))),
    ],
)
def test_the_tokenizers_threads_are_what_its_settings_make_them(env, expected):
    assert tokenizer_threads(env) == expected


@pytest.fixture
def threads_kept():
    """This process's threads, RAYON_NUM_THREADS and TOKENIZERS_PARALLELISM, as they were, after
    the test."""
    names = ("RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM")
    before, variables = (
        torch.get_num_threads(),
        {name: os.environ.pop(name, None) for name in names},
    )
    yield
    torch.set_num_threads(before)
    for name, value in variables.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


def test_without_a_pinned_count_torch_takes_the_jobs_threads(threads_kept):
    use_threads(None, 1)
    assert torch.get_num_threads() == 1 and "RAYON_NUM_THREADS" not in os.environ


def test_a_pinned_count_sets_torch_and_the_tokenizer_whatever_the_jobs_threads(threads_kept):
    use_threads(2, 1)
    assert torch.get_num_threads() == 2 and tokenizer_threads() == 2


def test_a_pinned_count_holds_where_the_job_inherited_the_tokenizers_off_switch(
    threads_kept,
):
    """tokenizers sets TOKENIZERS_PARALLELISM=false in every process forked by one that used its
    pool (a test runner, say): pinned threads are still the threads the row says."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    use_threads(2, 1)
    assert tokenizer_threads() == 2


def test_on_a_gpu_the_tokenizer_leaves_a_core_to_the_thread_that_feeds_it(threads_kept):
    use_threads(None, 4, "cuda:0")
    cores = len(os.sched_getaffinity(0))
    assert tokenizer_threads() == max(1, cores - 1) == gpu_tokenizer_threads(cores)
    assert torch.get_num_threads() == 4
    assert [gpu_tokenizer_threads(n) for n in (1, 2, 16)] == [1, 1, 15]


def test_on_a_gpu_a_tokenizer_pool_the_environment_sizes_is_kept(threads_kept):
    os.environ["RAYON_NUM_THREADS"] = "3"
    use_threads(None, 4, "cuda")
    assert tokenizer_threads() == 3
