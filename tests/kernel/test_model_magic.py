"""``%llmsock model`` in a real kernel: the models set up, and prompts that choose one."""

from __future__ import annotations

from .conftest import Kernel, text_of

ASK = (
    "__import__('llmsock_widget.notebook.answer', fromlist=['ask']).ask({prompt!r}, display=False, "
    "server=__import__('llmsock_widget').get_server(), options={options!r}).text"
)


def test_model_magic_lists_the_models_set_up_and_a_prompt_chooses_one(kernel: Kernel) -> None:
    """Each ``%llmsock model SPEC`` sets a model up; without a spec it says the default and the others."""
    kernel.run("%load_ext llmsock")
    assert text_of(kernel.run("%llmsock model")).strip() == "model: builtin"
    # A local OpenAI-compatible server that is never asked: setting a model up does not connect.
    kernel.run("%llmsock model openai:local-model --base-url http://127.0.0.1:9/v1")
    kernel.run("%llmsock model builtin:0")
    said = text_of(kernel.run("%llmsock model")).strip()
    assert said == "model: builtin (also set up: openai:local-model)"
    answer = kernel.value(
        ASK.format(prompt="hello", options={"model": "builtin", "system": "You are terse."})
    )
    assert answer.startswith('You said: "hello". This is the first turn of our conversation.')
    assert 'System prompt: "You are terse.".' in answer
    assert kernel.value("__import__('llmsock_widget').get_server().status()['models']") == [
        "builtin",
        "openai:local-model",
    ]
