"""The side-by-side tokenizing benchmark runs both pipelines on the same tweets."""

from __future__ import annotations

from sentistream.bench.tokenize import measure, render
from sentistream.text import TextConfig, TweetTokenizer, legacy

TWEETS = ["I LOVE it!!! sooo good :)", "@bob battery at 41%", "", "worst day ever"] * 5


def test_measure_times_old_and_new_on_the_same_tweets() -> None:
    config = TextConfig(maxlen=40, num_words=100)
    new = TweetTokenizer.train(TWEETS, 100)
    old = legacy.LegacyVocabulary.fit((legacy.tokenize(t) for t in TWEETS), 100)
    costs = measure(TWEETS, new, old, config, batch_size=8, repeats=1)
    assert [c.pipeline.split(" ")[0] for c in costs] == ["v2", "v3", "v3", "floor:"]
    assert all(c.tweets == len(TWEETS) and c.seconds > 0 for c in costs)
    assert costs[1].mean_tokens == costs[2].mean_tokens  # one tweet a call == batches
    assert "µs per tweet" in render(costs)
