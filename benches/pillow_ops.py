"""Times Pillow's versions of the `autoaugment` bench group's single operations on one 224 x 224
RGB image, for comparison with `cargo bench -p shardpipe-benches --bench images -- autoaugment`
(which reports 32 images per iteration: divide its time by 32).

Run with Pillow installed:  python3 benches/pillow_ops.py
"""
import random
import time

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

FILL = (124, 116, 104)
random.seed(0)
IMG = Image.frombytes("RGB", (224, 224), bytes(random.randrange(256) for _ in range(224 * 224 * 3)))


def timed(name, op, n=200):
    op(IMG)
    start = time.perf_counter()
    for _ in range(n):
        op(IMG)
    print(f"{name}: {(time.perf_counter() - start) / n * 1e3:.3f} ms per image")


timed("rotate_nearest", lambda im: im.rotate(27, resample=Image.NEAREST, fillcolor=FILL))
timed("rotate_bilinear", lambda im: im.rotate(27, resample=Image.BILINEAR, fillcolor=FILL))
timed("rotate_bicubic", lambda im: im.rotate(27, resample=Image.BICUBIC, fillcolor=FILL))
affine = lambda m, r: lambda im: im.transform(im.size, Image.AFFINE, m, resample=r, fillcolor=FILL)
timed("shear_x_bilinear", affine((1, 0.2, 0, 0, 1, 0), Image.BILINEAR))
timed("shear_x_bicubic", affine((1, 0.2, 0, 0, 1, 0), Image.BICUBIC))
timed("shear_y_bicubic", affine((1, 0, 0, -0.25, 1, 0), Image.BICUBIC))
timed("translate_y_bilinear", affine((1, 0, 0, 0, 1, 40.3), Image.BILINEAR))
timed("equalize", ImageOps.equalize)
timed("color", lambda im: ImageEnhance.Color(im).enhance(1.8))
timed("sharpness", lambda im: ImageEnhance.Sharpness(im).enhance(1.8))
timed("gaussian_blur", lambda im: im.filter(ImageFilter.GaussianBlur(1.0)))
