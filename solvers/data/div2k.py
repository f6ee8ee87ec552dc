"""`make div2k`: downloads and unpacks DIV2K's HR images and bicubic LR images for one scale.

    python -m solvers.data.div2k --root data/DIV2K [--scale 3]

From the dataset's official site (https://data.vision.ee.ethz.ch/cvl/DIV2K/); about 3.8 GB for ×3.
Archives already unpacked are skipped; a download goes to a .part file renamed when complete.
Without internet access it stops with one line `error: ...` and exit 2. Never run by the tests.
"""
import argparse
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

BASE_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"


def archives(scale):
    """(archive name, folder it unpacks to) for the four archives of one scale."""
    return [("DIV2K_train_HR.zip", "DIV2K_train_HR"),
            ("DIV2K_valid_HR.zip", "DIV2K_valid_HR"),
            (f"DIV2K_train_LR_bicubic_X{scale}.zip", f"DIV2K_train_LR_bicubic/X{scale}"),
            (f"DIV2K_valid_LR_bicubic_X{scale}.zip", f"DIV2K_valid_LR_bicubic/X{scale}")]


def download(url, target):
    """Streams `url` into `target` through a .part file."""
    part = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)
    part.replace(target)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="data/DIV2K")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=3)
    args = parser.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    for name, folder in archives(args.scale):
        if (root / folder).is_dir() and any((root / folder).iterdir()):
            print(f"{root / folder}: already there")
            continue
        archive = root / name
        if not archive.is_file():
            print(f"downloading {BASE_URL + name} ...", flush=True)
            try:
                download(BASE_URL + name, archive)
            except (urllib.error.URLError, OSError) as e:
                print(f"error: make div2k: cannot download {BASE_URL + name} "
                      f"({getattr(e, 'reason', e)}); this needs internet access", file=sys.stderr)
                return 2
        print(f"unpacking {archive} ...", flush=True)
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(root)
        except zipfile.BadZipFile:
            print(f"error: make div2k: {archive}: not a valid zip archive; delete it and retry",
                  file=sys.stderr)
            return 2
        archive.unlink()
    print(f"DIV2K ×{args.scale} is in {root}: use DATA=div2k DIV2K_ROOT={root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
