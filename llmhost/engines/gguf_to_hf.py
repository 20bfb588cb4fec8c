"""Convert a GGUF into a Hugging Face folder of bf16 safetensors, for engines that need one.

vLLM 0.32 no longer loads GGUF on CPU (its GGUF loader moved to a CUDA-only plugin), so the
embedded model is converted once: transformers reads the GGUF (`gguf_file=`), dequantizes every
tensor to bf16, and saves the model and its tokenizer. Two things the GGUF says that the
converted tokenizer loses are put back, or prompt token counts and chat answers would differ from
llama-server's on the same file: add-BOS (from `tokenizer.ggml.add_bos_token`) and, for a Gemma
GGUF without one, a chat template (Gemma's turn format, as llama.cpp's built-in `gemma` template
writes it: system text folded into the first user turn, `assistant` called `model`, contents
trimmed).

This file runs inside the vLLM venv (it needs torch and transformers, which llmhost's own
environment does not have), as a script: `python gguf_to_hf.py GGUF OUT`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Gemma's turn format. BOS is written by the template because vLLM renders chat prompts and then
# tokenizes them without adding special tokens; plain completions get BOS from add_bos_token.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% set ns.system = ns.system + (message['content'] | trim) %}"
    "{% else %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{% if ns.system and role != 'model' %}{{ ns.system + '\n\n' }}"
    "{% set ns.system = '' %}{% endif %}"
    "{{ (message['content'] | trim) + '<end_of_turn>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def convert(gguf: Path, out: Path) -> None:
    """Dequantize `gguf` to bf16 and save model and tokenizer (add-BOS, chat template) in `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(dequantize=True),
    )
    # Every tensor is now plain bf16: drop the GGUF quantizer, which refuses to be saved, so the
    # folder is an ordinary unquantized checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # llama.cpp ends a reply at any end-of-generation token, Gemma's <end_of_turn> included;
    # transformers keeps only the GGUF's single eos id.
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id:
        eos = model.generation_config.eos_token_id
        ids = eos if isinstance(eos, list) else [eos]
        model.generation_config.eos_token_id = [*ids, end_of_turn]
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.add_bos_token = True
    if tokenizer.chat_template is None and model.config.model_type.startswith("gemma"):
        tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: gguf_to_hf.py GGUF OUT")
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
