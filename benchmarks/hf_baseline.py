"""The baseline a user would otherwise pick: transformers' ``Trainer`` with
``AutoModelForTokenClassification``, set up the way ``run_ner.py`` does, and
``pipeline("token-classification", aggregation_strategy="first")`` for prediction.

Used by ``speed.py`` side by side with ConCNER's own loops; not part of the library.
"""

from __future__ import annotations

import time
from pathlib import Path

from concner.labels import LabelSchema
from concner.sentence import Sentence


def _tokenize_and_align(tokenizer, sentences: list[Sentence], schema: LabelSchema,
                        max_length: int) -> list[dict]:
    """``run_ner.py``'s ``tokenize_and_align_labels`` with ``label_all_tokens=False``."""
    rows = []
    for sent in sentences:
        enc = tokenizer(sent.tokens, is_split_into_words=True, truncation=True,
                        max_length=max_length)
        labels, previous = [], None
        for wid in enc.word_ids():
            if wid is None or wid == previous:
                labels.append(-100)
            else:
                labels.append(schema.tag_to_id[sent.tags[wid]])
            previous = wid
        rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                     "labels": labels})
    return rows


def train_with_trainer(encoder_dir: str | Path, sentences: list[Sentence], schema: LabelSchema,
                       out_dir: str | Path, *, epochs: float = 1.0, batch_size: int = 16,
                       learning_rate: float = 1e-4, max_length: int = 128, seed: int = 13,
                       max_steps: int = -1) -> dict:
    """Fine-tune with ``Trainer`` (run_ner.py defaults but batch/lr/epochs). Returns timing."""
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir))
    model = AutoModelForTokenClassification.from_pretrained(
        str(encoder_dir), num_labels=len(schema), id2label=dict(enumerate(schema.tags)),
        label2id=schema.tag_to_id)
    rows = _tokenize_and_align(tokenizer, sentences, schema, max_length)

    class _List(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    args = TrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, num_train_epochs=epochs, max_steps=max_steps, seed=seed,
        save_strategy="no", eval_strategy="no", logging_strategy="no", report_to=[],
        disable_tqdm=True, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_List(),
                      data_collator=DataCollatorForTokenClassification(tokenizer))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    seen = trainer.state.global_step * batch_size
    return {"seconds": seconds, "steps": trainer.state.global_step,
            "sentences_seen": min(seen, int(len(rows) * epochs)) if max_steps < 0 else seen,
            "model": model, "tokenizer": tokenizer}


def pipeline_entities(model, tokenizer, sentences: list[Sentence], *, batch_size: int = 32
                      ) -> tuple[list[set[tuple[int, int, str]]], float]:
    """Entities as ``{(start, end, label)}`` per sentence from the stock pipeline, and seconds.

    The pipeline runs on ``sentence.text`` (tokens joined by spaces), the way a user would
    call it on raw text; character offsets are comparable with ConCNER's spans.
    """
    from transformers import pipeline

    nlp = pipeline("token-classification", model=model, tokenizer=tokenizer,
                   aggregation_strategy="first", device=-1)
    texts = [s.text for s in sentences]
    start = time.perf_counter()
    outputs = nlp(texts, batch_size=batch_size)
    seconds = time.perf_counter() - start
    result = []
    for out in outputs:
        result.append({(int(e["start"]), int(e["end"]), e["entity_group"]) for e in out})
    return result, seconds
