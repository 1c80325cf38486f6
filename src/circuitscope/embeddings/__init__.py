"""Embedding arithmetic: analogies (3CosAdd, 3CosMul), nearest neighbours and span projections."""

from circuitscope.embeddings.analogy import (
    AnalogyResult,
    ExpressionError,
    Neighbours,
    SpanProjection,
    Term,
    nearest_neighbours,
    parse_expression,
    project_onto_span,
    solve_analogy,
)
from circuitscope.embeddings.benchmark import (
    AnalogyBenchmarkResult,
    AnalogyQuestions,
    SectionScore,
    evaluate_analogies,
    load_google_analogies,
    parse_analogy_file,
)
from circuitscope.embeddings.matrix import (
    GLOVE_REQUIREMENT,
    Embeddings,
    VocabularyError,
    load_glove_6b_50d,
    model_embeddings,
)

__all__ = [
    "GLOVE_REQUIREMENT",
    "AnalogyBenchmarkResult",
    "AnalogyQuestions",
    "AnalogyResult",
    "Embeddings",
    "ExpressionError",
    "Neighbours",
    "SectionScore",
    "SpanProjection",
    "Term",
    "VocabularyError",
    "evaluate_analogies",
    "load_glove_6b_50d",
    "load_google_analogies",
    "model_embeddings",
    "nearest_neighbours",
    "parse_analogy_file",
    "parse_expression",
    "project_onto_span",
    "solve_analogy",
]
