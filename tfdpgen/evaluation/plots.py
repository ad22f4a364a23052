"""Pictures people would rather look at than numbers.

Figures are built as `matplotlib.figure.Figure` objects and saved, never through pyplot: choosing a backend here
(matplotlib.use("Agg")) switched a notebook's inline backend off on `import tfdpgen`, and its pyplot.show() drew
nothing.
"""
import numpy as np
from matplotlib.figure import Figure


def save_image_grid(images: np.ndarray, path, columns: int = 8, title: str = None) -> None:
    """A grid of [N, H, W, 1 or 3] images in [0, 1], saved as PNG."""
    rows = int(np.ceil(len(images) / columns))
    fig = Figure(figsize=(columns, rows + (0.4 if title else 0)))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image in zip(axes.ravel(), images):
        if image.shape[-1] == 1:
            ax.imshow(np.squeeze(image, -1), cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(np.clip(image, 0, 1))
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def save_column_histograms(columns: dict, path, title: str = None, max_columns: int = 16) -> None:
    """Histograms (numbers) or bar charts (categories) of generated table columns {name: values}, saved as PNG."""
    names = list(columns)[:max_columns]
    per_row = 4
    rows = int(np.ceil(len(names) / per_row))
    fig = Figure(figsize=(3 * per_row, 2.2 * rows + (0.4 if title else 0)))
    axes = fig.subplots(rows, per_row, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        ax.axis("on")
        values = np.asarray(columns[name])
        if values.dtype.kind in "SUO":
            labels, counts = np.unique(values.astype(str), return_counts=True)
            order = np.argsort(-counts)[:12]
            ax.bar(range(len(order)), counts[order])
            ax.set_xticks(range(len(order)), labels[order], rotation=60, fontsize=6)
        else:
            ax.hist(values, bins=20)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def save_real_synthetic_histograms(real: dict, synthetic: dict, path, max_columns: int = 16) -> None:
    """Per-column distributions of held-out real rows beside synthetic rows (shares, so sizes may differ)."""
    names = list(real)[:max_columns]
    per_row = 4
    rows = int(np.ceil(len(names) / per_row))
    fig = Figure(figsize=(3 * per_row, 2.2 * rows))
    axes = fig.subplots(rows, per_row, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        ax.axis("on")
        a, b = np.asarray(real[name]), np.asarray(synthetic[name])
        if a.dtype.kind in "SUO" or b.dtype.kind in "SUO":
            a, b = a.astype(str), np.char.decode(b) if b.dtype.kind == "S" else b.astype(str)
            labels = np.unique(np.r_[a, b])[:12]
            x = np.arange(len(labels))
            ax.bar(x - 0.2, [np.mean(a == v) for v in labels], 0.4, label="real (held out)")
            ax.bar(x + 0.2, [np.mean(b == v) for v in labels], 0.4, label="synthetic")
            ax.set_xticks(x, labels, rotation=60, fontsize=6)
        else:
            bins = np.histogram_bin_edges(np.r_[a, b], bins=20)
            ax.hist(a, bins=bins, alpha=0.5, density=True, label="real (held out)")
            ax.hist(b, bins=bins, alpha=0.5, density=True, label="synthetic")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
