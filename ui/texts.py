"""What the front ends say: teaching paragraphs and choice labels, shared so both tell the same story."""

CLASSIFY_INTRO = """
A Vision Transformer cuts the photo into 16x16-pixel patches, turns each patch into a token,
adds a special **CLS** token, and lets every token attend to every other one through a stack of layers.
The label comes from the CLS token at the end. ([Dosovitskiy et al., 2020](https://arxiv.org/abs/2010.11929))
"""

ATTENTION_INTRO = """
Every layer mixes the tokens by attention. **Rollout** multiplies the layers' attention matrices
(each averaged with the identity, for the skip connections) to trace how much each patch flows into the
CLS token by the end ([Abnar & Zuidema, 2020](https://arxiv.org/abs/2005.00928)). **Gradient rollout**
weights each attention by its gradient for one class, so it shows where the evidence for *that* class is
([Chefer et al., 2021](https://arxiv.org/abs/2103.15679)). **Raw attention** shows one layer and head as it is.
"""

METHOD_CHOICES = [("Rollout", "rollout"), ("Gradient rollout (one class)", "grad_rollout"), ("Raw attention", "attention")]
COLORMAPS = ["jet", "turbo", "viridis", "inferno", "magma", "plasma", "gray"]

MODEL_INFO = "Pick one, or type any Hugging Face image-classification id or the path of a local save_pretrained folder."
