"""Prompt text to unit vectors, and vectors to segments (``--segments auto``, SPEC 12).

The embedding is local and downloads nothing: latent semantic analysis. Each prompt's words and
word pairs (lower case, English stop words dropped) are hashed into 2^18 columns
(scikit-learn's ``HashingVectorizer``: no vocabulary to store); the ``MAX_TERMS`` columns found
in the most prompts (and in at least ``MIN_DF``) are kept and weighted by sublinear TF-IDF,
each prompt's row scaled to length 1; a truncated SVD (randomised, seeded) projects the rows to
``dim`` dimensions, and each vector is scaled to length 1 again, so that the cosine of two
prompts is their dot product (the feature space of a kNN router such as PORT). A prompt with
none of the kept terms maps to the zero vector.

The fitted map (``PromptEmbedding``) embeds new prompts in the same space, and the fitted
clusters (``Clusters``) assign them to a segment. Both fits run on one thread: the result does
not depend on the machine's thread count, and on a shared machine one thread is also faster
(12,000 prompts embed and cluster in 2 to 3 s). scikit-learn is imported on first use.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

HASH_COLUMNS = 2**18
MAX_TERMS = 16384  # columns kept: the terms found in the most prompts
MIN_DF = 2  # a term in one prompt only says nothing about which prompts are alike
SVD_ITERATIONS = 5  # power iterations of the randomised SVD
KMEANS_STARTS = 4  # k-means restarts (the best of them is kept)


def _hashed(texts: Sequence[str]) -> Any:
    """The raw term counts [n, HASH_COLUMNS] (a SciPy CSR matrix)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    hasher = HashingVectorizer(ngram_range=(1, 2), stop_words="english", n_features=HASH_COLUMNS,
                               alternate_sign=False, norm=None)
    return hasher.transform(list(texts))


def _unit_rows(x: NDArray[np.float64]) -> NDArray[np.float64]:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(np.divide(x, norm, out=np.zeros_like(x), where=norm > 0), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class PromptEmbedding:
    """A fitted embedding: the kept hash columns, their IDF weights and the SVD's directions."""

    columns: NDArray[np.int64]  # [F] kept hash columns, sorted
    idf: NDArray[np.float64]  # [F]
    components: NDArray[np.float64]  # [rank, F], rank <= dim
    dim: int

    def _weighted(self, counts: Any) -> Any:
        """Sublinear TF-IDF rows of hashed ``counts`` over the kept columns, each of length 1
        (zero rows stay 0)."""
        from scipy.sparse import diags
        from sklearn.preprocessing import normalize

        x = counts[:, self.columns].astype(np.float64)
        x.data = 1.0 + np.log(x.data)
        return normalize(x @ diags(self.idf))

    def _project(self, counts: Any) -> NDArray[np.float64]:
        out = np.zeros((counts.shape[0], self.dim))
        if counts.shape[0] and self.components.shape[0]:
            projected = self._weighted(counts) @ self.components.T
            out[:, : self.components.shape[0]] = np.asarray(projected, dtype=np.float64)
        return _unit_rows(out)

    def transform(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """The unit vectors [n, dim] of ``texts`` (zero vectors for texts with no kept term)."""
        return self._project(_hashed(texts))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """scikit-learn's numerical warnings on degenerate text (every prompt alike: an SVD with no
    variance to explain) stay out of stderr: a library does not print."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _fit(counts: Any, dim: int, seed: int) -> PromptEmbedding:
    from sklearn.decomposition import TruncatedSVD
    from threadpoolctl import threadpool_limits

    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    n = counts.shape[0]
    if n == 0:
        raise ValueError("cannot fit an embedding on no text")
    df = np.bincount(counts.indices, minlength=HASH_COLUMNS)
    top = np.argsort(-df, kind="stable")[:MAX_TERMS]
    columns = np.sort(top[df[top] >= MIN_DF]).astype(np.int64)
    idf = np.log((1.0 + n) / (1.0 + df[columns])) + 1.0
    rank = min(dim, n - 1, columns.size - 1)
    empty = PromptEmbedding(columns, idf, np.zeros((0, columns.size)), dim)
    if rank < 1:
        return empty
    with threadpool_limits(limits=1), _quiet():
        svd = TruncatedSVD(rank, n_iter=SVD_ITERATIONS, random_state=seed)
        svd.fit(empty._weighted(counts))
    components = np.ascontiguousarray(svd.components_, dtype=np.float64)
    return PromptEmbedding(columns, idf, components, dim)


def fit_embedding(texts: Sequence[str], dim: int = 64, seed: int = 0) -> PromptEmbedding:
    """Fit the embedding of the module docstring on ``texts`` (deterministic for a seed)."""
    return _fit(_hashed(texts), dim, seed)


def embed_prompts(texts: Sequence[str], dim: int = 64, seed: int = 0) -> NDArray[np.float64]:
    """Unit vectors [n, dim] of ``texts``, from an embedding fitted on them
    (``fit_embedding(texts, dim, seed).transform(texts)``, hashing the texts once)."""
    counts = _hashed(texts)
    return _fit(counts, dim, seed)._project(counts)


def segment_names(k: int) -> tuple[str, ...]:
    """The names of k automatic segments: auto-00, auto-01, ... (wider beyond 100).

    >>> segment_names(3)
    ('auto-00', 'auto-01', 'auto-02')
    """
    width = max(2, len(str(k - 1)))
    return tuple(f"auto-{i:0{width}d}" for i in range(k))


@dataclass(frozen=True, slots=True)
class Clusters:
    """Fitted k-means clusters; cluster 0 is the largest on the data they were fitted on."""

    centroids: NDArray[np.float64]  # [k, dim]

    @property
    def names(self) -> tuple[str, ...]:
        return segment_names(self.centroids.shape[0])

    def assign(self, features: NDArray[np.float64]) -> NDArray[np.int64]:
        """The nearest centroid (Euclidean) of each row of ``features`` [n, dim]."""
        x = np.asarray(features, dtype=np.float64)
        distance = ((self.centroids**2).sum(axis=1)[None, :] - 2.0 * x @ self.centroids.T)
        return np.asarray(np.argmin(distance, axis=1), dtype=np.int64)


def fit_clusters(features: NDArray[np.float64], k: int, seed: int = 0) -> Clusters:
    """k-means (``KMEANS_STARTS`` seeded restarts) on ``features`` [n, dim]; at most k clusters:
    fewer when the rows have fewer distinct values. Clusters are numbered by size, largest
    first (ties: the one whose first row comes first)."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    x = np.ascontiguousarray(features, dtype=np.float64)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty [n, dim] array, got shape {x.shape}")
    k = min(k, np.unique(x, axis=0).shape[0])
    with threadpool_limits(limits=1), _quiet():
        fitted = KMeans(k, n_init=KMEANS_STARTS, random_state=seed).fit(x)
    labels = np.asarray(fitted.labels_, dtype=np.int64)
    sizes = np.bincount(labels, minlength=k)
    first = np.array([np.flatnonzero(labels == i)[0] if sizes[i] else x.shape[0] for i in range(k)])
    order = np.lexsort((first, -sizes))
    return Clusters(np.ascontiguousarray(fitted.cluster_centers_[order], dtype=np.float64))


def cluster(features: NDArray[np.float64], k: int, seed: int = 0) -> NDArray[np.int64]:
    """The segment (0..k-1) of each row of ``features``: ``fit_clusters`` then ``assign``."""
    return fit_clusters(features, k, seed).assign(features)
