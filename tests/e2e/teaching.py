"""What each tab opens with, in both front ends: a few sentences for a class and a link to the paper behind it."""

PAPER_LINKS = {
    "Classify": "Dosovitskiy et al., 2020",
    "Attention": "Abnar & Zuidema, 2020",
    "Step by step": "Dosovitskiy et al., 2020",
    "Caption": "BLIP, Li et al., 2022",
    "Zero-shot": "Radford et al., 2021",
    "Inside": "Masked Autoencoders Are Scalable Vision Learners",
    "Train": "Dosovitskiy et al., 2020",
}
