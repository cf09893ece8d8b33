"""The data contract: official annotations, the corpus layout (reader, writer, manifest), windows, split tensors,
corpus checks (Great Expectations)."""
