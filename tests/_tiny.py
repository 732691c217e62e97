"Tiny random-initialised models shared by the test modules (no downloads)."
from transformers import CLIPConfig, CLIPModel


def tiny_clip(image_size=32, patch_size=8, layers=2):
    "A HF `CLIPModel` with two-head 32-wide towers: vocabulary 100, 16 positions, BOS 0, EOS/pad 1."
    t = dict(vocab_size=100, hidden_size=32, intermediate_size=37, num_hidden_layers=layers, num_attention_heads=2,
             max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    v = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=layers, num_attention_heads=2, image_size=image_size, patch_size=patch_size)
    return CLIPModel(CLIPConfig(text_config=t, vision_config=v, projection_dim=16)).eval()
