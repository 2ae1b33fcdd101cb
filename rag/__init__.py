"""The library behind the service: settings, tokenizer, chunker, embedders, store, indexes,
retrieval and answering. No HTTP, no command line, no printing."""

__version__ = "0.1.0"
