"""The Caption tab end to end: the real app through gradio_client, against the engine in this process."""

from __future__ import annotations

import csv

import pytest
from gradio_client import Client, handle_file

from core.caption import caption, caption_attention

# strategy, beams, captions, max_new_tokens, top_p, temperature, repetition_penalty, no_repeat_ngram_size
BEAMS_2_CAPTIONS = ("beam search", 3, 2, 8, 0.9, 1.0, 1.0, 0)
GREEDY = ("greedy", 3, 1, 8, 0.9, 1.0, 1.0, 0)


@pytest.fixture(scope="module")
def client(app_url) -> Client:
    return Client(app_url, verbose=False)


def test_caption_endpoints_are_listed(client):
    endpoints = client.view_api(return_format="dict")["named_endpoints"]
    assert {"/caption", "/caption_words", "/caption_batch"} <= set(endpoints)


@pytest.mark.parametrize("which", ["vit-gpt2", "blip"])
def test_captions_match_the_engine(client, captioner_dir, blip_dir, photo_path, which):
    folder = str(captioner_dir if which == "vit-gpt2" else blip_dir)
    shown, status, to_map = client.predict(
        handle_file(str(photo_path)), folder, "", *BEAMS_2_CAPTIONS, api_name="/caption"
    )
    expected = caption(photo_path, model=folder, max_new_tokens=8, num_beams=3, num_return_sequences=2)
    assert shown == "\n".join(f"{i}. {text}" for i, text in enumerate(expected, start=1))
    assert to_map["value"] == expected[0] and [choice[0] for choice in to_map["choices"]] == expected
    assert folder in status and " ms" in status


def test_blip_continues_the_prompt_and_vit_gpt2_leaves_it_out(client, captioner_dir, blip_dir, photo_path):
    image = handle_file(str(photo_path))
    blip_shown, _, _ = client.predict(image, str(blip_dir), "a photo of", *GREEDY, api_name="/caption")
    assert blip_shown.startswith("### a photo of")
    gpt2_shown, _, _ = client.predict(image, str(captioner_dir), "a photo of", *GREEDY, api_name="/caption")
    assert gpt2_shown == "### " + caption(photo_path, model=str(captioner_dir), max_new_tokens=8, num_beams=1)


def test_word_maps_one_per_word(client, captioner_dir, photo_path):
    text = "a cat sitting on a couch"
    tiles = client.predict(
        handle_file(str(photo_path)), text, str(captioner_dir), 0, "viridis", 0.5, api_name="/caption_words"
    )
    tokens = caption_attention(photo_path, text, model=str(captioner_dir)).tokens
    assert [tile["caption"] for tile in tiles] == [f"{i}. {token}" for i, token in enumerate(tokens, start=1)]


@pytest.mark.parametrize(
    "args, message",
    [
        (("a cat", 9), "The decoder has 2 layers: pick a layer from 1 to 2"),
        (("", 0), "No caption to map"),
    ],
)
def test_word_map_errors_are_messages(client, captioner_dir, photo_path, args, message):
    text, layer = args
    with pytest.raises(Exception, match=message):
        client.predict(
            handle_file(str(photo_path)), text, str(captioner_dir), layer, "jet", 0.5, api_name="/caption_words"
        )


def test_more_captions_than_beams_is_a_message(client, captioner_dir, photo_path):
    with pytest.raises(Exception, match=r"num_return_sequences \(3\) cannot exceed num_beams \(2\)"):
        client.predict(
            handle_file(str(photo_path)),
            str(captioner_dir),
            "",
            "beam search",
            2,
            3,
            8,
            0.9,
            1.0,
            1.0,
            0,
            api_name="/caption",
        )


def test_caption_batch_table_and_csv(client, captioner_dir, photo_path, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo_path.read_bytes()[:200])
    table, csv_path, summary = client.predict(
        [handle_file(str(photo_path)), handle_file(str(broken))],
        str(captioner_dir),
        "",
        *GREEDY,
        api_name="/caption_batch",
    )
    expected = caption(photo_path, model=str(captioner_dir), max_new_tokens=8, num_beams=1)
    assert table["data"][0][:2] == [photo_path.name, expected]
    assert table["data"][1][0] == "broken.png" and "broken.png" in table["data"][1][3]
    assert "**1** image captioned" in summary and "**1** could not be read" in summary
    with open(csv_path, newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle))[0] == ["file", "caption", "other_captions", "error"]
