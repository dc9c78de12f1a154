//! A relevance test set for search (issue 13, point 8): a realistic corpus of models,
//! datasets, embeddings, runs and papers owned by four users with mixed profiles, and the
//! queries people type, each with the documents a user wants in the top 3 and those that must
//! never appear. It is a quality gauge: every failing query is reported at once, and fails
//! the test — [`KNOWN_FAILING`], where a query the ranking could not yet satisfy was listed
//! (kept, not weakened), is empty.
//!
//! Every query also runs as each owner (who sees only part of the corpus) and as an anonymous
//! caller: no hit, `total`, highlight or `/aggregate` count may reveal a document that caller
//! cannot read. Those checks are never excused.
//!
//! The corpus: 72 projects, each with one metadata document and two data files in one version
//! (216 file documents) plus its project record (72 project documents), i.e. 288 documents.
//! Seeding goes through the router: `POST /projects`, `PUT .../permissions` for the shared
//! ones, `POST .../versions`, three direct uploads, `PUT .../complete`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use axum::http::{Method, StatusCode};
use futures::StreamExt as _;
use serde_json::{Map, Value, json};
use trove::permissions::Role;

use crate::common::artifacts::*;
use crate::common::{Backend, BackendApp, TestApp};

/// Queries (their `q`) that fail because of the search itself, not the test: the expectation
/// stays as a user would have it, and the test prints them instead of failing. Empty since
/// the ranking of 2026-12-02 (the last three: `voxceleb` — a file's own metadata against its
/// project's inherited words; `title:bert` — equal scores of per-document JSON norms;
/// `year:[2021 TO 2021]` — a range over a metadata key); keep it so.
const KNOWN_FAILING: &[&str] = &[];

/// The accounts owning projects; `rita` (a reviewer) reads everything.
const OWNERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
/// The caller who reads the whole corpus.
const READS_ALL: &str = "rita";
/// How many projects are seeded at once.
const SEED_CONCURRENCY: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Model,
    Dataset,
    Embedding,
    Run,
    Paper,
}

impl Kind {
    fn type_name(self) -> &'static str {
        match self {
            Kind::Model => "MODEL",
            Kind::Dataset => "DATASET",
            Kind::Embedding => "EMBEDDING",
            Kind::Run => "RUN",
            Kind::Paper => "PAPER",
        }
    }

    /// Where the project's metadata document lives.
    fn metadata_path(self) -> &'static str {
        match self {
            Kind::Model => "config/model.json",
            Kind::Dataset => "dataset.json",
            Kind::Embedding => "embeddings.json",
            Kind::Run => "run.json",
            Kind::Paper => "paper.json",
        }
    }

    /// The data files of a project of this kind, unless it lists its own.
    fn default_files(self) -> &'static [&'static str] {
        match self {
            Kind::Model => &["weights/model.safetensors", "README.md"],
            Kind::Dataset => &["data/train-00001.parquet", "README.md"],
            Kind::Embedding => &["vectors/embeddings.npy", "index/faiss.index"],
            Kind::Run => &["logs/train.log", "checkpoints/last.ckpt"],
            Kind::Paper => &["paper.pdf", "figures/figure-1.png"],
        }
    }
}

/// Who reads a project besides its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Private,
    Public,
    /// Shared with one user (`viewers` + `read_access: viewers`).
    Shared(&'static str),
}

/// A value of a metadata document.
#[derive(Debug, Clone, Copy)]
enum V {
    S(&'static str),
    N(f64),
    A(&'static [&'static str]),
}

/// One project of the corpus.
struct Project {
    id: &'static str,
    kind: Kind,
    owner: &'static str,
    access: Access,
    title: &'static str,
    description: &'static str,
    tags: &'static [&'static str],
    /// The metadata document, as dotted keys (`training.dataset`) and values.
    meta: &'static [(&'static str, V)],
    /// Data files; empty for the kind's defaults.
    files: &'static [&'static str],
}

use Access::{Private, Public, Shared};
use Kind::{Dataset, Embedding, Model, Paper, Run};
use V::{A, N, S};

/// Data files that are JSON documents themselves (indexed as metadata documents).
const JSON_FILES: &[(&str, &str, &str)] = &[(
    "coco-2017",
    "annotations/instances_train2017.json",
    r#"{"info": {"description": "COCO 2017 Dataset", "year": 2017},
        "categories": [{"name": "person", "supercategory": "person"},
                       {"name": "bicycle", "supercategory": "vehicle"},
                       {"name": "car", "supercategory": "vehicle"}]}"#,
)];

#[rustfmt::skip]
const CORPUS: &[Project] = &[
    // ---- alice: language models, text datasets, word vectors, their runs and papers.
    Project { id: "bert-base-uncased", kind: Model, owner: "alice", access: Public,
        title: "BERT base uncased",
        description: "Transformer encoder pretrained with masked language modelling on lower-cased English text",
        tags: &["nlp", "encoder", "transformer"],
        meta: &[("architecture", S("BertForMaskedLM")), ("task", S("fill-mask")), ("framework", S("pytorch")),
            ("license", S("apache-2.0")), ("training.dataset", A(&["bookcorpus", "english-wikipedia"])),
            ("training.epochs", N(40.0)), ("training.optimizer", S("adamw")), ("languages", A(&["en"]))],
        files: &[] },
    Project { id: "bert-large-cased", kind: Model, owner: "alice", access: Private,
        title: "BERT large cased",
        description: "24-layer BERT encoder with a cased WordPiece vocabulary",
        tags: &["nlp", "encoder", "transformer"],
        meta: &[("architecture", S("BertForMaskedLM")), ("task", S("fill-mask")), ("framework", S("pytorch")),
            ("license", S("apache-2.0")), ("training.dataset", A(&["bookcorpus", "english-wikipedia"])),
            ("training.optimizer", S("adamw")), ("languages", A(&["en"]))],
        files: &[] },
    Project { id: "roberta-base", kind: Model, owner: "alice", access: Public,
        title: "RoBERTa base",
        description: "Robustly optimized BERT pretraining approach, trained longer on more text",
        tags: &["nlp", "encoder", "transformer"],
        meta: &[("architecture", S("RobertaForMaskedLM")), ("task", S("fill-mask")), ("framework", S("pytorch")),
            ("training.dataset", A(&["openwebtext", "cc-news"])), ("training.optimizer", S("adamw"))],
        files: &[] },
    Project { id: "gpt2-small", kind: Model, owner: "alice", access: Public,
        title: "GPT-2 small",
        description: "Decoder-only language model for open-ended text generation",
        tags: &["nlp", "generation", "decoder"],
        meta: &[("architecture", S("GPT2LMHeadModel")), ("task", S("text-generation")), ("framework", S("pytorch")),
            ("license", S("mit")), ("training.dataset", S("openwebtext"))],
        files: &[] },
    Project { id: "t5-base", kind: Model, owner: "alice", access: Shared("bob"),
        title: "T5 base",
        description: "Text-to-text transformer for translation and summarization",
        tags: &["nlp", "seq2seq", "transformer"],
        meta: &[("architecture", S("T5ForConditionalGeneration")), ("task", S("text2text-generation")),
            ("framework", S("jax")), ("training.dataset", S("c4"))],
        files: &[] },
    Project { id: "llama-7b-chat", kind: Model, owner: "alice", access: Private,
        title: "Llama 7B chat",
        description: "Instruction-tuned chat model with 7 billion parameters",
        tags: &["nlp", "llm", "chat"],
        meta: &[("architecture", S("LlamaForCausalLM")), ("task", S("text-generation")), ("license", S("llama2")),
            ("training.dataset", S("ultrachat")), ("context_length", N(4096.0))],
        files: &[] },
    Project { id: "mistral-7b-instruct", kind: Model, owner: "alice", access: Shared("carol"),
        title: "Mistral 7B instruct",
        description: "Instruction-following language model with sliding-window attention",
        tags: &["nlp", "llm", "chat"],
        meta: &[("architecture", S("MistralForCausalLM")), ("task", S("text-generation")), ("license", S("apache-2.0")),
            ("training.dataset", S("instruct-mix"))],
        files: &[] },
    Project { id: "squad-v2", kind: Dataset, owner: "alice", access: Public,
        title: "SQuAD 2.0",
        description: "Reading comprehension questions on Wikipedia articles, including unanswerable ones",
        tags: &["nlp", "question-answering"],
        meta: &[("name", S("SQuAD")), ("modality", S("text")), ("license", S("cc-by-sa-4.0")),
            ("homepage", S("https://rajpurkar.github.io/SQuAD-explorer/")), ("splits", A(&["train", "validation"])),
            ("languages", A(&["en"]))],
        files: &[] },
    Project { id: "wikitext-103", kind: Dataset, owner: "alice", access: Public,
        title: "WikiText-103",
        description: "Over 100 million tokens from verified Good and Featured Wikipedia articles",
        tags: &["nlp", "language-modeling"],
        meta: &[("name", S("WikiText")), ("modality", S("text")), ("license", S("cc-by-sa-3.0")),
            ("splits", A(&["train", "validation", "test"]))],
        files: &[] },
    Project { id: "openwebtext", kind: Dataset, owner: "alice", access: Public,
        title: "OpenWebText",
        description: "Web pages linked from Reddit, an open reproduction of WebText",
        tags: &["nlp", "pretraining"],
        meta: &[("name", S("OpenWebText")), ("modality", S("text")), ("license", S("cc0-1.0")),
            ("source.homepage", S("https://skylion007.github.io/OpenWebTextCorpus/")), ("splits", A(&["train"]))],
        files: &[] },
    Project { id: "c4-en", kind: Dataset, owner: "alice", access: Private,
        title: "C4 English",
        description: "Colossal Clean Crawled Corpus from Common Crawl",
        tags: &["nlp", "pretraining"],
        meta: &[("name", S("C4")), ("modality", S("text")), ("license", S("odc-by")),
            ("splits", A(&["train", "validation"])), ("languages", A(&["en"]))],
        files: &[] },
    Project { id: "glove-6b-300d", kind: Embedding, owner: "alice", access: Public,
        title: "GloVe 6B 300d",
        description: "Word vectors trained on Wikipedia and Gigaword",
        tags: &["nlp", "word-vectors"],
        meta: &[("algorithm", S("glove")), ("dimension", N(300.0)), ("corpus", A(&["wikipedia", "gigaword"])),
            ("vocabulary_size", N(400_000.0))],
        files: &["vectors/glove.6B.300d.txt", "README.md"] },
    Project { id: "fasttext-wiki-fr", kind: Embedding, owner: "alice", access: Shared("carol"),
        title: "fastText French word vectors",
        description: "Subword-aware word vectors for French trained on Wikipedia",
        tags: &["nlp", "word-vectors", "french"],
        meta: &[("algorithm", S("fasttext")), ("dimension", N(300.0)), ("corpus", S("wikipedia")),
            ("languages", A(&["fr"]))],
        files: &["vectors/wiki.fr.vec", "README.md"] },
    Project { id: "sbert-minilm-l6", kind: Embedding, owner: "alice", access: Public,
        title: "all-MiniLM-L6-v2 sentence embeddings",
        description: "Sentence embeddings for semantic search and clustering",
        tags: &["nlp", "sentence-embeddings", "semantic-search"],
        meta: &[("model", S("sentence-transformers/all-MiniLM-L6-v2")), ("dimension", N(384.0)),
            ("metric", S("cosine")), ("corpus", S("msmarco"))],
        files: &[] },
    Project { id: "e5-wiki-passages", kind: Embedding, owner: "alice", access: Private,
        title: "E5 embeddings of Wikipedia passages",
        description: "Dense retrieval index of 21 million passages",
        tags: &["nlp", "retrieval"],
        meta: &[("model", S("intfloat/e5-base-v2")), ("dimension", N(768.0)), ("metric", S("dot")),
            ("corpus", S("wikipedia"))],
        files: &[] },
    Project { id: "run-bert-squad-ft", kind: Run, owner: "alice", access: Private,
        title: "BERT fine-tuning on SQuAD 2.0",
        description: "Question answering head on BERT base, 2 epochs",
        tags: &["nlp", "question-answering", "finetuning"],
        meta: &[("model", S("bert-base-uncased")), ("training.dataset", S("squad-v2")), ("training.epochs", N(2.0)),
            ("training.learning_rate", N(3e-5)), ("training.optimizer", S("adamw")), ("metrics.f1", N(76.3)),
            ("metrics.exact_match", N(73.1)), ("hardware.gpu", S("A100")), ("status", S("finished"))],
        files: &[] },
    Project { id: "run-llama-lora-ultrachat", kind: Run, owner: "alice", access: Private,
        title: "LoRA fine-tuning of Llama 7B on UltraChat",
        description: "Low-rank adapters, rank 16, 3 epochs",
        tags: &["nlp", "llm", "finetuning"],
        meta: &[("model", S("llama-7b-chat")), ("training.dataset", S("ultrachat")), ("training.epochs", N(3.0)),
            ("training.learning_rate", N(2e-4)), ("metrics.eval_loss", N(1.12)), ("hardware.gpu", S("8x H100")),
            ("status", S("finished"))],
        files: &[] },
    Project { id: "run-gpt2-wikitext", kind: Run, owner: "alice", access: Shared("dave"),
        title: "GPT-2 small on WikiText-103",
        description: "Language modelling from scratch, perplexity tracked per epoch",
        tags: &["nlp", "language-modeling"],
        meta: &[("model", S("gpt2-small")), ("training.dataset", S("wikitext-103")), ("training.epochs", N(20.0)),
            ("metrics.perplexity", N(29.4)), ("hardware.gpu", S("V100")), ("status", S("finished"))],
        files: &[] },
    Project { id: "paper-attention-is-all-you-need", kind: Paper, owner: "alice", access: Public,
        title: "Attention Is All You Need",
        description: "The Transformer: sequence transduction with attention only",
        tags: &["nlp", "transformer", "architecture"],
        meta: &[("authors", A(&["Ashish Vaswani", "Noam Shazeer", "Niki Parmar", "Jakob Uszkoreit", "Llion Jones",
                "Aidan N. Gomez", "Lukasz Kaiser", "Illia Polosukhin"])),
            ("venue", S("NeurIPS")), ("year", N(2017.0)), ("arxiv", S("1706.03762")),
            ("abstract", S("The dominant sequence transduction models are based on complex recurrent or convolutional neural networks. We propose a new simple network architecture based solely on attention mechanisms."))],
        files: &[] },
    Project { id: "paper-bert", kind: Paper, owner: "alice", access: Public,
        title: "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
        description: "Masked language model pretraining of bidirectional encoders",
        tags: &["nlp", "pretraining"],
        meta: &[("authors", A(&["Jacob Devlin", "Ming-Wei Chang", "Kenton Lee", "Kristina Toutanova"])),
            ("venue", S("NAACL")), ("year", N(2019.0)), ("arxiv", S("1810.04805")),
            ("abstract", S("We introduce a new language representation model designed to pretrain deep bidirectional representations from unlabeled text."))],
        files: &[] },
    Project { id: "paper-lora", kind: Paper, owner: "alice", access: Shared("bob"),
        title: "LoRA: Low-Rank Adaptation of Large Language Models",
        description: "Freeze the pretrained weights and train low-rank update matrices",
        tags: &["nlp", "llm", "finetuning"],
        meta: &[("authors", A(&["Edward J. Hu", "Yelong Shen", "Phillip Wallis", "Zeyuan Allen-Zhu", "Yuanzhi Li",
                "Shean Wang", "Lu Wang", "Weizhu Chen"])),
            ("venue", S("ICLR")), ("year", N(2022.0)), ("arxiv", S("2106.09685"))],
        files: &[] },
    // ---- bob: vision models, image datasets, their runs and papers.
    Project { id: "resnet50-imagenet", kind: Model, owner: "bob", access: Public,
        title: "ResNet-50",
        description: "Residual network image classifier with 50 layers",
        tags: &["vision", "classification", "cnn"],
        meta: &[("architecture", S("ResNet")), ("task", S("image-classification")), ("framework", S("pytorch")),
            ("training.dataset", S("imagenet")), ("training.epochs", N(90.0)), ("training.optimizer", S("sgd"))],
        files: &[] },
    Project { id: "resnet18-cifar10", kind: Model, owner: "bob", access: Private,
        title: "ResNet-18 CIFAR-10",
        description: "Small residual network trained on 32x32 images",
        tags: &["vision", "classification", "cnn"],
        meta: &[("architecture", S("ResNet")), ("task", S("image-classification")), ("framework", S("pytorch")),
            ("training.dataset", S("cifar10")), ("training.epochs", N(200.0))],
        files: &[] },
    Project { id: "vit-base-patch16", kind: Model, owner: "bob", access: Public,
        title: "ViT base patch16",
        description: "Vision transformer image classifier on 16x16 patches",
        tags: &["vision", "classification", "transformer"],
        meta: &[("architecture", S("ViTForImageClassification")), ("task", S("image-classification")),
            ("framework", S("jax")), ("training.dataset", S("imagenet"))],
        files: &[] },
    Project { id: "efficientnet-b0", kind: Model, owner: "bob", access: Shared("alice"),
        title: "EfficientNet B0",
        description: "Compound-scaled convolutional network for mobile image classification",
        tags: &["vision", "classification", "mobile"],
        meta: &[("architecture", S("EfficientNet")), ("task", S("image-classification")),
            ("framework", S("tensorflow")), ("training.dataset", S("imagenet"))],
        files: &["weights/model.tflite", "README.md"] },
    Project { id: "yolov8-coco", kind: Model, owner: "bob", access: Public,
        title: "YOLOv8 object detector",
        description: "Real-time object detection, nano variant",
        tags: &["vision", "detection"],
        meta: &[("architecture", S("YOLOv8n")), ("task", S("object-detection")), ("framework", S("ultralytics")),
            ("license", S("agpl-3.0")), ("training.dataset", S("coco")), ("training.epochs", N(300.0))],
        files: &["weights/yolov8n.pt", "README.md"] },
    Project { id: "detr-resnet50", kind: Model, owner: "bob", access: Private,
        title: "DETR object detection",
        description: "End-to-end detection transformer on a ResNet-50 backbone",
        tags: &["vision", "detection", "transformer"],
        meta: &[("architecture", S("DetrForObjectDetection")), ("task", S("object-detection")),
            ("framework", S("pytorch")), ("training.dataset", S("coco"))],
        files: &[] },
    Project { id: "unet-segmentation-cityscapes", kind: Model, owner: "bob", access: Shared("dave"),
        title: "U-Net street segmentation",
        description: "Semantic segmentation of urban street scenes",
        tags: &["vision", "segmentation"],
        meta: &[("architecture", S("UNet")), ("task", S("image-segmentation")), ("framework", S("pytorch")),
            ("training.dataset", S("cityscapes"))],
        files: &[] },
    Project { id: "clip-vit-b32", kind: Model, owner: "bob", access: Public,
        title: "CLIP ViT-B/32",
        description: "Contrastive image-text model for zero-shot classification",
        tags: &["vision", "multimodal"],
        meta: &[("architecture", S("CLIPModel")), ("task", S("zero-shot-image-classification")),
            ("training.dataset", S("laion-400m"))],
        files: &[] },
    Project { id: "stable-diffusion-v15", kind: Model, owner: "bob", access: Private,
        title: "Stable Diffusion 1.5",
        description: "Latent text-to-image model",
        tags: &["vision", "generation", "diffusion"],
        meta: &[("architecture", S("UNet2DConditionModel")), ("task", S("text-to-image")),
            ("license", S("creativeml-openrail-m")), ("training.dataset", S("laion-aesthetics"))],
        files: &["weights/v1-5-pruned-emaonly.safetensors", "README.md"] },
    Project { id: "imagenet-1k", kind: Dataset, owner: "bob", access: Public,
        title: "ImageNet 1k",
        description: "1.28 million labelled images in 1000 classes",
        tags: &["vision", "images", "benchmark"],
        meta: &[("name", S("ImageNet")), ("modality", S("image")), ("license", S("custom-research")),
            ("homepage", S("https://image-net.org")), ("splits", A(&["train", "validation"]))],
        files: &[] },
    Project { id: "cifar10", kind: Dataset, owner: "bob", access: Public,
        title: "CIFAR-10",
        description: "60,000 32x32 colour images in 10 classes",
        tags: &["vision", "images", "benchmark"],
        meta: &[("name", S("CIFAR-10")), ("modality", S("image")), ("splits", A(&["train", "test"]))],
        files: &[] },
    Project { id: "coco-2017", kind: Dataset, owner: "bob", access: Public,
        title: "COCO 2017",
        description: "Common Objects in Context: object detection, segmentation and captioning",
        tags: &["vision", "detection", "segmentation"],
        meta: &[("name", S("COCO")), ("modality", S("image")), ("license", S("cc-by-4.0")),
            ("splits", A(&["train2017", "val2017"]))],
        files: &["annotations/instances_train2017.json", "data/train-00001.parquet"] },
    Project { id: "cityscapes", kind: Dataset, owner: "bob", access: Private,
        title: "Cityscapes",
        description: "Urban street scenes from 50 cities with pixel-level annotations",
        tags: &["vision", "segmentation", "driving"],
        meta: &[("name", S("Cityscapes")), ("modality", S("image")), ("splits", A(&["train", "val", "test"]))],
        files: &[] },
    Project { id: "laion-aesthetics", kind: Dataset, owner: "bob", access: Private,
        title: "LAION aesthetics subset",
        description: "Image-text pairs filtered by a predicted aesthetics score",
        tags: &["vision", "multimodal", "image-text"],
        meta: &[("name", S("LAION-Aesthetics")), ("modality", A(&["image", "text"])), ("license", S("cc-by-4.0"))],
        files: &[] },
    Project { id: "clip-image-embeddings-coco", kind: Embedding, owner: "bob", access: Shared("alice"),
        title: "CLIP image embeddings of COCO",
        description: "ViT-B/32 image embeddings of every COCO 2017 train image",
        tags: &["vision", "multimodal"],
        meta: &[("model", S("clip-vit-b32")), ("dimension", N(512.0)), ("metric", S("cosine")),
            ("corpus", S("coco-2017"))],
        files: &[] },
    Project { id: "run-resnet50-imagenet-baseline", kind: Run, owner: "bob", access: Public,
        title: "ResNet-50 ImageNet baseline",
        description: "90-epoch baseline with a step learning-rate schedule",
        tags: &["vision", "baseline"],
        meta: &[("model", S("resnet50-imagenet")), ("training.dataset", S("imagenet")), ("training.epochs", N(90.0)),
            ("training.optimizer", S("sgd")), ("metrics.top1_accuracy", N(76.1)), ("hardware.gpu", S("V100")),
            ("status", S("finished"))],
        files: &[] },
    Project { id: "run-vit-imagenet-augreg", kind: Run, owner: "bob", access: Private,
        title: "ViT-B/16 ImageNet AugReg",
        description: "Vision transformer trained with strong augmentation and regularization",
        tags: &["vision", "transformer"],
        meta: &[("model", S("vit-base-patch16")), ("training.dataset", S("imagenet")), ("training.epochs", N(300.0)),
            ("metrics.top1_accuracy", N(81.4)), ("hardware.gpu", S("TPU v3")), ("status", S("finished"))],
        files: &[] },
    Project { id: "run-yolov8-coco-sweep", kind: Run, owner: "bob", access: Private,
        title: "YOLOv8 hyperparameter sweep on COCO",
        description: "Learning-rate and mosaic-augmentation sweep, 24 trials",
        tags: &["vision", "detection", "sweep"],
        meta: &[("model", S("yolov8-coco")), ("training.dataset", S("coco")), ("metrics.map", N(37.3)),
            ("hardware.gpu", S("A100")), ("status", S("running"))],
        files: &[] },
    Project { id: "run-unet-cityscapes", kind: Run, owner: "bob", access: Shared("carol"),
        title: "U-Net Cityscapes training",
        description: "Segmentation training at 1024x512 with a poly schedule",
        tags: &["vision", "segmentation"],
        meta: &[("model", S("unet-segmentation-cityscapes")), ("training.dataset", S("cityscapes")),
            ("metrics.miou", N(71.2)), ("hardware.gpu", S("A100")), ("status", S("finished"))],
        files: &[] },
    Project { id: "run-sd-dreambooth", kind: Run, owner: "bob", access: Private,
        title: "Stable Diffusion DreamBooth run",
        description: "Subject-driven fine-tuning with 20 reference photos",
        tags: &["vision", "generation", "finetuning"],
        meta: &[("model", S("stable-diffusion-v15")), ("training.dataset", S("dreambooth-dog")),
            ("training.steps", N(800.0)), ("hardware.gpu", S("A10G")), ("status", S("finished"))],
        files: &[] },
    Project { id: "paper-resnet", kind: Paper, owner: "bob", access: Public,
        title: "Deep Residual Learning for Image Recognition",
        description: "Residual connections make very deep networks trainable",
        tags: &["vision", "architecture"],
        meta: &[("authors", A(&["Kaiming He", "Xiangyu Zhang", "Shaoqing Ren", "Jian Sun"])),
            ("venue", S("CVPR")), ("year", N(2016.0)), ("arxiv", S("1512.03385"))],
        files: &[] },
    Project { id: "paper-vit", kind: Paper, owner: "bob", access: Public,
        title: "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
        description: "Pure transformers applied to sequences of image patches",
        tags: &["vision", "transformer"],
        meta: &[("authors", A(&["Alexey Dosovitskiy", "Lucas Beyer", "Alexander Kolesnikov", "Dirk Weissenborn",
                "Xiaohua Zhai", "Thomas Unterthiner", "Mostafa Dehghani", "Matthias Minderer", "Georg Heigold",
                "Sylvain Gelly", "Jakob Uszkoreit", "Neil Houlsby"])),
            ("venue", S("ICLR")), ("year", N(2021.0)), ("arxiv", S("2010.11929"))],
        files: &[] },
    Project { id: "paper-clip", kind: Paper, owner: "bob", access: Private,
        title: "Learning Transferable Visual Models From Natural Language Supervision",
        description: "Contrastive pretraining on 400 million image-text pairs",
        tags: &["vision", "multimodal"],
        meta: &[("authors", A(&["Alec Radford", "Jong Wook Kim", "Chris Hallacy", "Aditya Ramesh", "Gabriel Goh",
                "Sandhini Agarwal", "Girish Sastry", "Amanda Askell", "Pamela Mishkin", "Jack Clark",
                "Gretchen Krueger", "Ilya Sutskever"])),
            ("venue", S("ICML")), ("year", N(2021.0)), ("arxiv", S("2103.00020"))],
        files: &[] },
    Project { id: "paper-yolo", kind: Paper, owner: "bob", access: Public,
        title: "You Only Look Once: Unified, Real-Time Object Detection",
        description: "Detection framed as a single regression problem",
        tags: &["vision", "detection"],
        meta: &[("authors", A(&["Joseph Redmon", "Santosh Divvala", "Ross Girshick", "Ali Farhadi"])),
            ("venue", S("CVPR")), ("year", N(2016.0)), ("arxiv", S("1506.02640"))],
        files: &[] },
    // ---- carol: speech and tabular.
    Project { id: "whisper-small", kind: Model, owner: "carol", access: Public,
        title: "Whisper small",
        description: "Multilingual speech recognition and translation, 244M parameters",
        tags: &["speech", "asr", "multilingual"],
        meta: &[("architecture", S("WhisperForConditionalGeneration")), ("task", S("automatic-speech-recognition")),
            ("framework", S("pytorch")), ("license", S("mit")), ("training.dataset", S("weak-supervision-680k")),
            ("languages", A(&["en", "fr", "de", "es"]))],
        files: &[] },
    Project { id: "whisper-large-v3", kind: Model, owner: "carol", access: Private,
        title: "Whisper large v3",
        description: "Large multilingual speech recognition model",
        tags: &["speech", "asr", "multilingual"],
        meta: &[("architecture", S("WhisperForConditionalGeneration")), ("task", S("automatic-speech-recognition")),
            ("framework", S("pytorch")), ("license", S("mit"))],
        files: &[] },
    Project { id: "wav2vec2-base-960h", kind: Model, owner: "carol", access: Public,
        title: "wav2vec 2.0 base 960h",
        description: "Self-supervised speech model fine-tuned for English speech recognition",
        tags: &["speech", "asr"],
        meta: &[("architecture", S("Wav2Vec2ForCTC")), ("task", S("automatic-speech-recognition")),
            ("training.dataset", S("librispeech")), ("languages", A(&["en"]))],
        files: &[] },
    Project { id: "hubert-speaker-id", kind: Model, owner: "carol", access: Shared("bob"),
        title: "HuBERT speaker identification",
        description: "Classifies who is speaking from a short utterance",
        tags: &["speech", "speaker"],
        meta: &[("architecture", S("HubertForSequenceClassification")), ("task", S("audio-classification")),
            ("training.dataset", S("voxceleb"))],
        files: &[] },
    Project { id: "xgboost-churn", kind: Model, owner: "carol", access: Private,
        title: "XGBoost churn predictor",
        description: "Gradient boosted trees predicting customer churn from billing history",
        tags: &["tabular", "classification"],
        meta: &[("architecture", S("gbtree")), ("task", S("binary-classification")), ("framework", S("xgboost")),
            ("training.dataset", S("telco-churn"))],
        files: &["model/xgboost-churn.ubj", "README.md"] },
    Project { id: "lightgbm-fraud", kind: Model, owner: "carol", access: Shared("dave"),
        title: "LightGBM fraud detector",
        description: "Flags fraudulent card transactions in real time",
        tags: &["tabular", "fraud"],
        meta: &[("architecture", S("gbdt")), ("task", S("binary-classification")), ("framework", S("lightgbm")),
            ("training.dataset", S("credit-card-fraud"))],
        files: &["model/lightgbm.txt", "README.md"] },
    Project { id: "librispeech-960h", kind: Dataset, owner: "carol", access: Public,
        title: "LibriSpeech 960h",
        description: "960 hours of English read speech from audiobooks",
        tags: &["speech", "audio", "english"],
        meta: &[("name", S("LibriSpeech")), ("modality", S("audio")), ("license", S("cc-by-4.0")),
            ("homepage", S("https://www.openslr.org/12")), ("splits", A(&["train-clean-100", "train-clean-360", "train-other-500"]))],
        files: &[] },
    Project { id: "common-voice-fr", kind: Dataset, owner: "carol", access: Shared("alice"),
        title: "Common Voice French",
        description: "Crowd-sourced French speech recordings with transcripts",
        tags: &["speech", "audio", "french"],
        meta: &[("name", S("Common Voice")), ("modality", S("audio")), ("license", S("cc0-1.0")),
            ("languages", A(&["fr"]))],
        files: &[] },
    Project { id: "telco-churn", kind: Dataset, owner: "carol", access: Private,
        title: "Telco customer churn",
        description: "Subscriber contracts, billing and churn labels",
        tags: &["tabular", "churn"],
        meta: &[("name", S("Telco churn")), ("modality", S("tabular")), ("rows", N(7043.0))],
        files: &["data/customers.csv", "README.md"] },
    Project { id: "credit-card-fraud", kind: Dataset, owner: "carol", access: Private,
        title: "Credit card fraud transactions",
        description: "Anonymised card transactions labelled fraudulent or genuine",
        tags: &["tabular", "fraud"],
        meta: &[("name", S("Credit card fraud")), ("modality", S("tabular")), ("rows", N(284_807.0))],
        files: &["data/transactions.csv", "README.md"] },
    Project { id: "ecapa-speaker-embeddings", kind: Embedding, owner: "carol", access: Public,
        title: "ECAPA speaker embeddings",
        description: "Speaker verification embeddings of VoxCeleb utterances",
        tags: &["speech", "speaker"],
        meta: &[("model", S("speechbrain/spkrec-ecapa-voxceleb")), ("dimension", N(192.0)), ("metric", S("cosine"))],
        files: &[] },
    Project { id: "product-catalog-embeddings", kind: Embedding, owner: "carol", access: Private,
        title: "Product catalog embeddings",
        description: "Embeddings of 2 million product titles for recommendation",
        tags: &["recommendation", "ecommerce"],
        meta: &[("model", S("sentence-transformers/all-mpnet-base-v2")), ("dimension", N(768.0)),
            ("corpus", S("product-catalog"))],
        files: &[] },
    Project { id: "run-whisper-fr-finetune", kind: Run, owner: "carol", access: Private,
        title: "Whisper small fine-tuned on Common Voice French",
        description: "Adapting multilingual Whisper to French speech",
        tags: &["speech", "finetuning", "french"],
        meta: &[("model", S("whisper-small")), ("training.dataset", S("common-voice-fr")), ("training.epochs", N(5.0)),
            ("metrics.wer", N(11.2)), ("hardware.gpu", S("A10G")), ("status", S("finished"))],
        files: &[] },
    Project { id: "run-xgboost-churn-cv", kind: Run, owner: "carol", access: Private,
        title: "XGBoost churn 5-fold cross-validation",
        description: "Cross-validated AUC of the churn model",
        tags: &["tabular", "evaluation"],
        meta: &[("model", S("xgboost-churn")), ("training.dataset", S("telco-churn")), ("metrics.auc", N(0.91)),
            ("status", S("finished"))],
        files: &[] },
    Project { id: "run-wav2vec2-librispeech", kind: Run, owner: "carol", access: Public,
        title: "wav2vec 2.0 fine-tuning on LibriSpeech",
        description: "CTC fine-tuning on the 960h split",
        tags: &["speech", "finetuning"],
        meta: &[("model", S("wav2vec2-base-960h")), ("training.dataset", S("librispeech")), ("metrics.wer", N(3.4)),
            ("hardware.gpu", S("V100")), ("status", S("finished"))],
        files: &[] },
    Project { id: "paper-whisper", kind: Paper, owner: "carol", access: Public,
        title: "Robust Speech Recognition via Large-Scale Weak Supervision",
        description: "680,000 hours of weakly supervised multilingual audio",
        tags: &["speech", "weak-supervision"],
        meta: &[("authors", A(&["Alec Radford", "Jong Wook Kim", "Tao Xu", "Greg Brockman", "Christine McLeavey",
                "Ilya Sutskever"])),
            ("venue", S("ICML")), ("year", N(2023.0)), ("arxiv", S("2212.04356"))],
        files: &[] },
    Project { id: "paper-xgboost", kind: Paper, owner: "carol", access: Public,
        title: "XGBoost: A Scalable Tree Boosting System",
        description: "Sparsity-aware gradient boosted trees",
        tags: &["tabular", "boosting"],
        meta: &[("authors", A(&["Tianqi Chen", "Carlos Guestrin"])), ("venue", S("KDD")), ("year", N(2016.0)),
            ("arxiv", S("1603.02754"))],
        files: &[] },
    Project { id: "paper-internal-churn-study", kind: Paper, owner: "carol", access: Shared("dave"),
        title: "Churn drivers in Q3 subscriptions",
        description: "Internal analysis of why subscribers cancelled",
        tags: &["tabular", "churn", "internal"],
        meta: &[("authors", A(&["Carol Diaz"])), ("venue", S("internal report")), ("year", N(2024.0))],
        files: &[] },
    // ---- dave: sentiment, graphs, clinical text.
    Project { id: "sst2", kind: Dataset, owner: "dave", access: Public,
        title: "SST-2 sentiment",
        description: "Stanford Sentiment Treebank: movie review sentences labelled positive or negative",
        tags: &["nlp", "sentiment", "classification"],
        meta: &[("name", S("SST-2")), ("modality", S("text")), ("splits", A(&["train", "validation", "test"]))],
        files: &[] },
    Project { id: "distilbert-sst2", kind: Model, owner: "dave", access: Shared("alice"),
        title: "DistilBERT fine-tuned on SST-2",
        description: "Sentiment classifier distilled from BERT base",
        tags: &["nlp", "sentiment", "classification"],
        meta: &[("architecture", S("DistilBertForSequenceClassification")), ("task", S("text-classification")),
            ("training.dataset", S("sst2"))],
        files: &[] },
    Project { id: "run-distilbert-sst2", kind: Run, owner: "dave", access: Private,
        title: "DistilBERT SST-2 distillation",
        description: "Knowledge distillation from a BERT teacher on SST-2",
        tags: &["nlp", "sentiment", "distillation"],
        meta: &[("model", S("distilbert-sst2")), ("training.dataset", S("sst2")), ("metrics.accuracy", N(91.3)),
            ("hardware.gpu", S("T4")), ("status", S("finished"))],
        files: &[] },
    Project { id: "graphsage-cora", kind: Model, owner: "dave", access: Public,
        title: "GraphSAGE node classifier",
        description: "Inductive node classification on citation networks",
        tags: &["graph", "gnn"],
        meta: &[("architecture", S("GraphSAGE")), ("task", S("node-classification")), ("framework", S("pyg")),
            ("training.dataset", S("cora"))],
        files: &[] },
    Project { id: "cora-citations", kind: Dataset, owner: "dave", access: Public,
        title: "Cora citation graph",
        description: "2,708 machine learning papers linked by citations",
        tags: &["graph", "citations"],
        meta: &[("name", S("Cora")), ("modality", S("graph")), ("nodes", N(2708.0)), ("edges", N(5429.0))],
        files: &[] },
    Project { id: "node2vec-cora", kind: Embedding, owner: "dave", access: Private,
        title: "node2vec embeddings of Cora",
        description: "Random-walk node embeddings of the Cora citation network",
        tags: &["graph", "node-embeddings"],
        meta: &[("algorithm", S("node2vec")), ("dimension", N(128.0)), ("corpus", S("cora"))],
        files: &[] },
    Project { id: "mimic-notes-deid", kind: Dataset, owner: "dave", access: Private,
        title: "De-identified clinical notes",
        description: "Discharge summaries with protected health information removed",
        tags: &["medical", "nlp", "sensitive"],
        meta: &[("name", S("Clinical notes")), ("modality", S("text")), ("license", S("restricted"))],
        files: &[] },
    Project { id: "paper-graphsage", kind: Paper, owner: "dave", access: Public,
        title: "Inductive Representation Learning on Large Graphs",
        description: "Sampling and aggregating features from a node's neighbourhood",
        tags: &["graph", "gnn"],
        meta: &[("authors", A(&["William L. Hamilton", "Rex Ying", "Jure Leskovec"])), ("venue", S("NeurIPS")),
            ("year", N(2017.0)), ("arxiv", S("1706.02216"))],
        files: &[] },
    Project { id: "paper-dropout", kind: Paper, owner: "dave", access: Shared("carol"),
        title: "Dropout: A Simple Way to Prevent Neural Networks from Overfitting",
        description: "Randomly dropping units during training as regularization",
        tags: &["regularization"],
        meta: &[("authors", A(&["Nitish Srivastava", "Geoffrey Hinton", "Alex Krizhevsky", "Ilya Sutskever",
                "Ruslan Salakhutdinov"])),
            ("venue", S("JMLR")), ("year", N(2014.0))],
        files: &[] },
];

/// One query as a user types it, and what a user wants from it (for a caller who reads
/// everything).
struct Query {
    /// The `q` parameter.
    q: &'static str,
    /// Other parameters (`kind=project`, `prefix=true`).
    params: &'static str,
    /// Must be the first hit.
    first: Option<&'static str>,
    /// Must all be in the top 3.
    top: &'static [&'static str],
    /// Must all be found (anywhere in the results).
    found: &'static [&'static str],
    /// Must never be found.
    never: &'static [&'static str],
}

const P: &str = "kind=project";

#[rustfmt::skip]
const QUERIES: &[Query] = &[
    // One word: a model family.
    Query { q: "bert", params: P, first: None, top: &["bert-base-uncased", "bert-large-cased"], found: &["distilbert-sst2"],
        never: &["resnet50-imagenet", "whisper-small", "imagenet-1k"] },
    Query { q: "BERT base", params: P, first: Some("bert-base-uncased"), top: &["bert-base-uncased"], found: &[],
        never: &["whisper-small"] },
    Query { q: "resnet", params: P, first: None, top: &["resnet50-imagenet", "resnet18-cifar10"], found: &[],
        never: &["bert-base-uncased", "vit-base-patch16"] },
    Query { q: "whisper", params: P, first: None, top: &["whisper-small", "whisper-large-v3"], found: &["run-whisper-fr-finetune"],
        never: &["wav2vec2-base-960h", "bert-base-uncased"] },
    Query { q: "YOLOv8", params: P, first: Some("yolov8-coco"), top: &["yolov8-coco", "run-yolov8-coco-sweep"], found: &[],
        never: &["detr-resnet50"] },
    // A dataset by name: the dataset itself first.
    Query { q: "imagenet", params: P, first: Some("imagenet-1k"), top: &["imagenet-1k"], found: &["resnet50-imagenet"],
        never: &["cifar10", "coco-2017"] },
    Query { q: "cityscapes", params: P, first: Some("cityscapes"),
        top: &["cityscapes", "unet-segmentation-cityscapes", "run-unet-cityscapes"], found: &[], never: &["coco-2017"] },
    Query { q: "sst2", params: P, first: Some("sst2"), top: &["sst2", "distilbert-sst2"], found: &[],
        never: &["squad-v2"] },
    Query { q: "coco", params: P, first: Some("coco-2017"), top: &["coco-2017"], found: &["yolov8-coco"],
        never: &["imagenet-1k"] },
    // Two words, topics.
    Query { q: "speech recognition", params: P, first: None, top: &["paper-whisper"], found: &["wav2vec2-base-960h", "whisper-small"],
        never: &["imagenet-1k", "cifar10"] },
    Query { q: "object detection", params: P, first: None, top: &["detr-resnet50", "yolov8-coco"], found: &["paper-yolo", "coco-2017"],
        never: &["resnet50-imagenet", "whisper-small"] },
    Query { q: "clinical notes", params: P, first: Some("mimic-notes-deid"), top: &["mimic-notes-deid"], found: &[],
        never: &["squad-v2"] },
    Query { q: "bert squad", params: P, first: Some("run-bert-squad-ft"), top: &["run-bert-squad-ft"], found: &["squad-v2"],
        never: &["coco-2017"] },
    Query { q: "vision transformer imagenet", params: P, first: None, top: &["vit-base-patch16"], found: &[],
        never: &["whisper-small"] },
    Query { q: "sentence embeddings", params: P, first: Some("sbert-minilm-l6"), top: &["sbert-minilm-l6"], found: &[],
        never: &["resnet50-imagenet"] },
    // Tags.
    Query { q: "asr", params: P, first: None, top: &["whisper-small", "whisper-large-v3", "wav2vec2-base-960h"], found: &[],
        never: &["librispeech-960h", "paper-whisper"] },
    Query { q: "sentiment", params: P, first: None, top: &["sst2", "distilbert-sst2", "run-distilbert-sst2"], found: &[],
        never: &["imagenet-1k"] },
    Query { q: "french", params: P, first: None, top: &["common-voice-fr", "fasttext-wiki-fr", "run-whisper-fr-finetune"], found: &[],
        never: &["whisper-small", "librispeech-960h"] },
    Query { q: "churn", params: P, first: None, top: &["xgboost-churn", "telco-churn"], found: &["paper-internal-churn-study"],
        never: &["lightgbm-fraud"] },
    Query { q: "fraud", params: P, first: None, top: &["lightgbm-fraud", "credit-card-fraud"], found: &[],
        never: &["xgboost-churn"] },
    Query { q: "gnn", params: P, first: None, top: &["graphsage-cora", "paper-graphsage"], found: &[],
        never: &["cora-citations"] },
    Query { q: "lora", params: P, first: None, top: &["paper-lora", "run-llama-lora-ultrachat"], found: &[],
        never: &["llama-7b-chat", "mistral-7b-instruct"] },
    // Phrases.
    Query { q: "\"attention is all you need\"", params: P, first: Some("paper-attention-is-all-you-need"),
        top: &["paper-attention-is-all-you-need"], found: &[], never: &["llama-7b-chat", "mistral-7b-instruct"] },
    Query { q: "\"semantic search\"", params: P, first: Some("sbert-minilm-l6"), top: &["sbert-minilm-l6"], found: &[],
        never: &["e5-wiki-passages"] },
    // Projects and files together.
    Query { q: "diffusion", params: "kind=all", first: Some("stable-diffusion-v15"), top: &["stable-diffusion-v15"],
        found: &["run-sd-dreambooth", "stable-diffusion-v15:weights/v1-5-pruned-emaonly.safetensors@v1"],
        never: &["clip-vit-b32"] },
    // A dataset named only inside nested metadata (`training.dataset`).
    Query { q: "bookcorpus", params: "", first: None,
        top: &["bert-base-uncased:config/model.json@v1", "bert-large-cased:config/model.json@v1"], found: &[],
        never: &["bert-base-uncased:weights/model.safetensors@v1", "bert-base-uncased:README.md@v1", "roberta-base:config/model.json@v1"] },
    Query { q: "voxceleb", params: "", first: None,
        top: &["hubert-speaker-id:config/model.json@v1"], found: &[],
        never: &["hubert-speaker-id:README.md@v1", "whisper-small:config/model.json@v1"] },
    // A value inside an array of objects, and author names inside arrays.
    Query { q: "bicycle", params: "", first: Some("coco-2017:annotations/instances_train2017.json@v1"),
        top: &["coco-2017:annotations/instances_train2017.json@v1"], found: &[],
        never: &["coco-2017:dataset.json@v1", "coco-2017:data/train-00001.parquet@v1"] },
    Query { q: "hinton", params: "", first: Some("paper-dropout:paper.json@v1"), top: &["paper-dropout:paper.json@v1"], found: &[],
        never: &["paper-dropout:paper.pdf@v1", "paper-dropout:figures/figure-1.png@v1"] },
    Query { q: "sutskever", params: "", first: None,
        top: &["paper-dropout:paper.json@v1", "paper-whisper:paper.json@v1", "paper-clip:paper.json@v1"], found: &[],
        never: &["paper-lora:paper.json@v1", "paper-whisper:paper.pdf@v1"] },
    Query { q: "h100", params: "", first: Some("run-llama-lora-ultrachat:run.json@v1"),
        top: &["run-llama-lora-ultrachat:run.json@v1"], found: &[],
        never: &["run-llama-lora-ultrachat:logs/train.log@v1", "run-bert-squad-ft:run.json@v1"] },
    // File names.
    Query { q: "yolov8n.pt", params: "", first: Some("yolov8-coco:weights/yolov8n.pt@v1"),
        top: &["yolov8-coco:weights/yolov8n.pt@v1"], found: &[], never: &["detr-resnet50:weights/model.safetensors@v1"] },
    Query { q: "v1-5-pruned-emaonly.safetensors", params: "",
        first: Some("stable-diffusion-v15:weights/v1-5-pruned-emaonly.safetensors@v1"),
        top: &["stable-diffusion-v15:weights/v1-5-pruned-emaonly.safetensors@v1"], found: &[], never: &[] },
    Query { q: "glove.6B.300d.txt", params: "", first: Some("glove-6b-300d:vectors/glove.6B.300d.txt@v1"),
        top: &["glove-6b-300d:vectors/glove.6B.300d.txt@v1"], found: &[], never: &["fasttext-wiki-fr:vectors/wiki.fr.vec@v1"] },
    Query { q: "instances_train2017.json", params: "", first: Some("coco-2017:annotations/instances_train2017.json@v1"),
        top: &["coco-2017:annotations/instances_train2017.json@v1"], found: &[], never: &["imagenet-1k:dataset.json@v1"] },
    // Prefixes, as a search box sends them.
    Query { q: "whisp", params: "kind=project&prefix=true", first: None, top: &["whisper-small", "whisper-large-v3"], found: &[],
        never: &["wav2vec2-base-960h"] },
    Query { q: "effici", params: "kind=project&prefix=true", first: Some("efficientnet-b0"), top: &["efficientnet-b0"], found: &[],
        never: &["resnet50-imagenet"] },
    Query { q: "stable diff", params: "kind=project&prefix=true", first: None,
        top: &["stable-diffusion-v15", "run-sd-dreambooth"], found: &[], never: &["clip-vit-b32", "laion-aesthetics"] },
    Query { q: "bookc", params: "prefix=true", first: None,
        top: &["bert-base-uncased:config/model.json@v1", "bert-large-cased:config/model.json@v1"], found: &[],
        never: &["roberta-base:config/model.json@v1"] },
    // Field-qualified.
    Query { q: "title:bert", params: P, first: None, top: &["bert-base-uncased", "bert-large-cased"],
        found: &["paper-bert", "run-bert-squad-ft"], never: &["distilbert-sst2", "roberta-base"] },
    Query { q: "training.dataset:cityscapes", params: "", first: None,
        top: &["unet-segmentation-cityscapes:config/model.json@v1", "run-unet-cityscapes:run.json@v1"], found: &[],
        never: &["cityscapes:dataset.json@v1", "cityscapes:data/train-00001.parquet@v1",
            "unet-segmentation-cityscapes:weights/model.safetensors@v1"] },
    Query { q: "training.dataset:imagenet", params: "", first: None, top: &[],
        found: &["resnet50-imagenet:config/model.json@v1", "vit-base-patch16:config/model.json@v1",
            "efficientnet-b0:config/model.json@v1", "run-resnet50-imagenet-baseline:run.json@v1",
            "run-vit-imagenet-augreg:run.json@v1"],
        never: &["imagenet-1k:dataset.json@v1", "resnet18-cifar10:config/model.json@v1",
            "resnet50-imagenet:weights/model.safetensors@v1"] },
    Query { q: "authors:vaswani", params: "", first: Some("paper-attention-is-all-you-need:paper.json@v1"),
        top: &["paper-attention-is-all-you-need:paper.json@v1"], found: &[], never: &["paper-bert:paper.json@v1"] },
    Query { q: "_extra.project_id:coco-2017", params: "", first: None,
        top: &["coco-2017:dataset.json@v1", "coco-2017:annotations/instances_train2017.json@v1", "coco-2017:data/train-00001.parquet@v1"],
        found: &[], never: &["yolov8-coco:config/model.json@v1", "clip-image-embeddings-coco:embeddings.json@v1"] },
    Query { q: "tags:fraud", params: P, first: None, top: &["lightgbm-fraud", "credit-card-fraud"], found: &[],
        never: &["xgboost-churn", "paper-xgboost"] },
    Query { q: "metrics.wer:*", params: "", first: None,
        top: &["run-whisper-fr-finetune:run.json@v1", "run-wav2vec2-librispeech:run.json@v1"], found: &[],
        never: &["whisper-small:config/model.json@v1", "run-bert-squad-ft:run.json@v1"] },
    Query { q: "year:[2021 TO 2021]", params: "", first: None,
        top: &["paper-vit:paper.json@v1", "paper-clip:paper.json@v1"], found: &[],
        never: &["paper-lora:paper.json@v1", "paper-resnet:paper.json@v1"] },
    Query { q: "speech AND french", params: P, first: None, top: &["common-voice-fr", "run-whisper-fr-finetune"], found: &[],
        never: &["fasttext-wiki-fr", "whisper-small"] },
    Query { q: "vision -imagenet", params: P, first: None, top: &[], found: &["cifar10", "coco-2017", "yolov8-coco"],
        never: &["imagenet-1k", "resnet50-imagenet", "whisper-small"] },
    Query { q: "year:2021", params: "", first: None,
        top: &["paper-vit:paper.json@v1", "paper-clip:paper.json@v1"], found: &[],
        never: &["paper-lora:paper.json@v1", "paper-resnet:paper.json@v1"] },
    Query { q: "vision AND NOT imagenet", params: P, first: None, top: &[], found: &["cifar10", "coco-2017", "yolov8-coco"],
        never: &["imagenet-1k", "resnet50-imagenet", "whisper-small"] },
];

impl Project {
    /// Whether `caller` (`None`: anonymous) may read this project.
    fn readable_by(&self, caller: Option<&str>) -> bool {
        match caller {
            Some(READS_ALL) => true,
            Some(user) if user == self.owner => true,
            _ if self.access == Public => true,
            Some(user) => matches!(self.access, Shared(viewer) if viewer == user),
            None => false,
        }
    }

    fn data_files(&self) -> &'static [&'static str] {
        if self.files.is_empty() {
            self.kind.default_files()
        } else {
            self.files
        }
    }

    /// The metadata document (dotted keys become nested objects).
    fn metadata(&self) -> Value {
        let mut root = Map::new();
        for (key, value) in self.meta {
            let value = match value {
                S(text) => json!(text),
                N(number) => json!(number),
                A(items) => json!(items),
            };
            let mut parts: Vec<&str> = key.split('.').collect();
            let last = parts.pop().unwrap();
            let mut object = &mut root;
            for part in parts {
                object = object
                    .entry(part.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .unwrap();
            }
            object.insert(last.to_owned(), value);
        }
        Value::Object(root)
    }
}

fn project(id: &str) -> &'static Project {
    CORPUS
        .iter()
        .find(|project| project.id == id)
        .unwrap_or_else(|| panic!("no project {id} in the corpus"))
}

/// The project of a document id (`project:path@version`, or a project id).
fn project_of(id: &str) -> &str {
    id.split_once(':').map_or(id, |(project, _)| project)
}

/// Creates one project through the router with its version, files and profile.
async fn seed_project(app: &TestApp, tokens: &BTreeMap<&str, String>, spec: &Project) {
    let token = tokens[spec.owner].as_str();
    let visibility = match spec.access {
        Public => "public",
        Private | Shared(_) => "private",
    };
    app.post_json(
        "/projects",
        token,
        &json!({"project_id": spec.id, "title": spec.title, "type": spec.kind.type_name(),
                "description": spec.description, "tags": spec.tags, "visibility": visibility}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    if let Shared(viewer) = spec.access {
        let shared = app
            .put_json(
                &format!("/projects/{}/permissions", spec.id),
                token,
                &json!({"viewers": [viewer], "read_access": "viewers"}),
            )
            .await;
        wait_job(app, token, &shared).await;
    }
    create_version(app, token, spec.id, "v1").await;
    let mut files: Vec<(String, Vec<u8>)> = vec![(
        spec.kind.metadata_path().to_owned(),
        serde_json::to_vec_pretty(&spec.metadata()).unwrap(),
    )];
    for path in spec.data_files() {
        let body = JSON_FILES
            .iter()
            .find(|(owner, file, _)| *owner == spec.id && file == path)
            .map_or_else(
                || format!("{} {path}\n", spec.id).into_bytes(),
                |(_, _, text)| text.as_bytes().to_vec(),
            );
        files.push(((*path).to_owned(), body));
    }
    for (path, body) in &files {
        let stored = upload(app, Some(token), spec.id, "v1", path, body).await;
        assert_eq!(
            stored.status,
            StatusCode::CREATED,
            "{path}: {}",
            stored.text()
        );
    }
    complete(app, token, spec.id, "v1", None).await;
}

/// One search answer: ids in order, `total`, highlights by id, raw hits.
struct Answer {
    ids: Vec<String>,
    total: u64,
    hits: Vec<Value>,
}

/// `GET /search` with the query's parameters (and `size=500`: every hit on one page); an
/// answer other than 200 as its text.
async fn search(
    app: &TestApp,
    token: Option<&str>,
    query: &Query,
    highlight: bool,
) -> Result<Answer, String> {
    let mut path = format!("/search?q={}&size=500", enc(query.q));
    if !query.params.is_empty() {
        path.push('&');
        path.push_str(query.params);
    }
    if highlight {
        path.push_str("&highlight=true");
    }
    let response = call(app, Method::GET, &path, token, None).await;
    if response.status != StatusCode::OK {
        return Err(format!("answers {}: {}", response.status, response.text()));
    }
    let body = response.json();
    let hits = body["results"].as_array().cloned().unwrap_or_default();
    Ok(Answer {
        ids: hits
            .iter()
            .map(|hit| hit["_extra"]["id"].as_str().unwrap_or_default().to_owned())
            .collect(),
        total: body["total"].as_u64().unwrap_or(u64::MAX),
        hits,
    })
}

/// `GET /aggregate?q=...&field=_extra.project_id` as project → count.
async fn aggregate(
    app: &TestApp,
    token: Option<&str>,
    q: &str,
) -> Result<BTreeMap<String, u64>, String> {
    let path = format!("/aggregate?q={}&field=_extra.project_id&size=500", enc(q));
    let response = call(app, Method::GET, &path, token, None).await;
    if response.status != StatusCode::OK {
        return Err(format!(
            "/aggregate answers {}: {}",
            response.status,
            response.text()
        ));
    }
    Ok(response.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["_extra.project_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                row["count"].as_u64().unwrap_or_default(),
            )
        })
        .collect())
}

/// Every string of a hit (the `_extra` object left out but its `path`).
fn own_strings(value: &Value, top: bool, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| own_strings(item, false, out)),
        Value::Object(object) => {
            for (key, child) in object {
                if top && key == "_extra" {
                    if let Some(path) = child["path"].as_str() {
                        out.push(path.to_owned());
                    }
                    continue;
                }
                own_strings(child, false, out);
            }
        }
        _ => {}
    }
}

/// The plain text of a highlight: marks and ellipses removed, HTML entities decoded.
fn highlight_text(highlight: &str) -> String {
    highlight
        .replace("<em>", "")
        .replace("</em>", "")
        .trim_start_matches('…')
        .trim_end_matches('…')
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The relevance failures of `query` for the caller who reads everything.
fn relevance_failures(query: &Query, answer: &Answer) -> Vec<String> {
    let mut failures = Vec::new();
    let top: Vec<&str> = answer.ids.iter().take(3).map(String::as_str).collect();
    if let Some(first) = query.first
        && answer.ids.first().map(String::as_str) != Some(first)
    {
        failures.push(format!("{first} is not first"));
    }
    for id in query.top {
        if !top.contains(id) {
            let rank = answer.ids.iter().position(|found| found == id);
            failures.push(match rank {
                Some(rank) => format!("{id} ranks {} (not in the top 3)", rank + 1),
                None => format!("{id} is not found"),
            });
        }
    }
    for id in query.found {
        if !answer.ids.iter().any(|found| found == id) {
            failures.push(format!("{id} is not found"));
        }
    }
    for id in query.never {
        if let Some(rank) = answer.ids.iter().position(|found| found == id) {
            failures.push(format!("{id} must never be found, ranks {}", rank + 1));
        }
    }
    failures
}

/// What `caller` learns from `query` that it may not: hits, total, highlights and aggregate
/// counts compared with the full answer restricted to the projects it reads.
async fn leaks(
    app: &TestApp,
    caller: Option<&str>,
    token: Option<&str>,
    query: &Query,
    full: &Answer,
    full_counts: &BTreeMap<String, u64>,
) -> Vec<String> {
    let who = caller.unwrap_or("anonymous");
    let mut found = Vec::new();
    let answer = match search(app, token, query, true).await {
        Ok(answer) => answer,
        Err(error) => return vec![format!("{who}: {error}")],
    };
    let readable = |id: &str| project(project_of(id)).readable_by(caller);
    for id in &answer.ids {
        if !readable(id) {
            found.push(format!("{who} gets the hit {id}"));
        }
    }
    let expected: BTreeSet<&str> = full
        .ids
        .iter()
        .map(String::as_str)
        .filter(|id| readable(id))
        .collect();
    let got: BTreeSet<&str> = answer.ids.iter().map(String::as_str).collect();
    if got != expected {
        found.push(format!(
            "{who} gets other hits than the readable part of the full answer: missing {:?}, extra {:?}",
            expected.difference(&got).collect::<Vec<_>>(),
            got.difference(&expected).collect::<Vec<_>>()
        ));
    }
    if answer.total != expected.len() as u64 {
        found.push(format!(
            "{who} sees total {} for {} readable hits",
            answer.total,
            expected.len()
        ));
    }
    for hit in &answer.hits {
        let Some(highlight) = hit["_extra"]["highlight"].as_str() else {
            continue;
        };
        let text = highlight_text(highlight);
        let mut strings = Vec::new();
        own_strings(hit, true, &mut strings);
        if !strings.iter().any(|own| own.contains(&text)) {
            found.push(format!(
                "{who}: the highlight {highlight:?} of {} is not built from its own text",
                hit["_extra"]["id"]
            ));
        }
    }
    let counts = match aggregate(app, token, query.q).await {
        Ok(counts) => counts,
        Err(error) => {
            found.push(format!("{who}: {error}"));
            return found;
        }
    };
    let expected_counts: BTreeMap<String, u64> = full_counts
        .iter()
        .filter(|(project_id, _)| readable(project_id))
        .map(|(project_id, count)| (project_id.clone(), *count))
        .collect();
    for project_id in counts.keys() {
        if !readable(project_id) {
            found.push(format!("{who}: /aggregate counts the project {project_id}"));
        }
    }
    if counts != expected_counts {
        found.push(format!(
            "{who}: /aggregate counts {counts:?}, expected {expected_counts:?}"
        ));
    }
    found
}

/// The corpus is what the module says: every expectation names one of its documents, and every
/// known failure one of its queries; answers the number of file documents.
async fn assert_the_corpus_is_what_the_module_says(
    app: &TestApp,
    tokens: &BTreeMap<&str, String>,
) -> usize {
    let files: usize = CORPUS.iter().map(|p| 1 + p.data_files().len()).sum();
    assert!(files >= 200, "{files} file documents");
    let all = search(
        app,
        Some(&tokens[READS_ALL]),
        &Query {
            q: "*",
            params: "kind=all",
            first: None,
            top: &[],
            found: &[],
            never: &[],
        },
        false,
    )
    .await
    .unwrap();
    assert_eq!(all.total as usize, files + CORPUS.len(), "{:?}", all.ids);
    // Every expectation names a document of the corpus.
    for query in QUERIES {
        for id in query
            .first
            .iter()
            .chain(query.top)
            .chain(query.found)
            .chain(query.never)
        {
            let _ = project(project_of(id));
            assert!(
                all.ids.iter().any(|found| found == id),
                "{}: {id} is not a document of the corpus",
                query.q
            );
        }
    }
    for known in KNOWN_FAILING {
        assert!(
            QUERIES.iter().any(|query| query.q == *known),
            "KNOWN_FAILING names no query: {known}"
        );
    }
    files
}

/// Runs `query` for the reader of everything and for each owner and anonymously: a relevance
/// failure goes to `report` (and to `unexpected` unless known), a leak to `leaked`.
async fn check_query(
    app: &TestApp,
    tokens: &BTreeMap<&str, String>,
    query: &Query,
    report: &mut Vec<String>,
    unexpected: &mut Vec<String>,
    leaked: &mut Vec<String>,
    passing_known: &mut usize,
) {
    let label = format!("q={} {}", query.q, query.params);
    let known = KNOWN_FAILING.contains(&query.q);
    let full = match search(app, Some(&tokens[READS_ALL]), query, false).await {
        Ok(full) => full,
        Err(error) => {
            report.push(format!(
                "{}{label}: {error}",
                if known { "known: " } else { "" }
            ));
            if !known {
                unexpected.push(format!("{label}: {error}"));
            }
            return;
        }
    };
    if full.total != full.ids.len() as u64 {
        leaked.push(format!(
            "{label}: total {} for {} hits",
            full.total,
            full.ids.len()
        ));
    }
    let failures = relevance_failures(query, &full);
    match (failures.is_empty(), known) {
        (true, false) => {}
        // Some pass or fail from run to run (near ties, see KNOWN_FAILING): noted only.
        (true, true) => {
            *passing_known += 1;
            report.push(format!("known, passes in this run: {label}"));
        }
        (false, _) => {
            let line = format!(
                "{label}: {} — top 5: {:?}",
                failures.join("; "),
                full.ids.iter().take(5).collect::<Vec<_>>()
            );
            report.push(format!("{}{line}", if known { "known: " } else { "" }));
            if !known {
                unexpected.push(line);
            }
        }
    }
    let full_counts = match aggregate(app, Some(&tokens[READS_ALL]), query.q).await {
        Ok(counts) => counts,
        Err(error) => {
            leaked.push(format!("{label}: {error}"));
            return;
        }
    };
    for owner in OWNERS {
        for leak in leaks(
            app,
            Some(owner),
            Some(&tokens[owner]),
            query,
            &full,
            &full_counts,
        )
        .await
        {
            leaked.push(format!("{label}: {leak}"));
        }
    }
    for leak in leaks(app, None, None, query, &full, &full_counts).await {
        leaked.push(format!("{label}: {leak}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queries_people_type_find_what_they_want_and_nothing_hidden() {
    let started = Instant::now();
    let app = BackendApp::start(Backend::Local).await;
    let mut tokens = BTreeMap::new();
    for owner in OWNERS {
        tokens.insert(owner, app.user_token(owner, Role::Maintainer).await);
    }
    tokens.insert(READS_ALL, app.user_token(READS_ALL, Role::Reviewer).await);
    let accounts = started.elapsed();
    // Projects are seeded a few at a time: their index commits are shared (one project at a
    // time takes ~1.8 s each in a debug build, mostly waiting for commits).
    futures::stream::iter(CORPUS)
        .map(|spec| seed_project(&app, &tokens, spec))
        .buffer_unordered(SEED_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let seeded = started.elapsed();
    eprintln!("relevance: accounts in {accounts:?}, seeded in {seeded:?}");

    // The corpus is what the module says.
    let files = assert_the_corpus_is_what_the_module_says(&app, &tokens).await;

    let mut report = Vec::new();
    let mut unexpected = Vec::new();
    let mut leaked = Vec::new();
    let mut passing_known = 0;
    for query in QUERIES {
        check_query(
            &app,
            &tokens,
            query,
            &mut report,
            &mut unexpected,
            &mut leaked,
            &mut passing_known,
        )
        .await;
    }
    eprintln!(
        "relevance: {} projects, {files} file documents, {} queries; accounts in {accounts:?}, seeded in {seeded:?}, total {:?}; {} failing, {} of them known ({} listed)",
        CORPUS.len(),
        QUERIES.len(),
        started.elapsed(),
        report.len() - passing_known,
        report.len() - passing_known - unexpected.len(),
        KNOWN_FAILING.len()
    );
    for line in &report {
        eprintln!("  {line}");
    }
    assert!(
        leaked.is_empty(),
        "callers learn what they may not read:\n{}",
        leaked.join("\n")
    );
    assert!(
        unexpected.is_empty(),
        "queries that do not find what a user wants:\n{}",
        unexpected.join("\n")
    );
}
