//! Precision and recall of the built-in detectors on a generated, labelled corpus.
//! Run with `cargo test -p nemoclaw-detect --test corpus -- --nocapture` to see the table.

#![allow(
    clippy::cast_precision_loss,
    clippy::many_single_char_names,
    clippy::too_many_lines,
    reason = "test data generators"
)]

#[path = "corpus/mod.rs"]
mod generator;

use std::collections::BTreeMap;
use std::time::Instant;

use generator::{Rng, negative, positive};
use nemoclaw_detect::{Category, Detector};

/// Positives generated per category.
const POSITIVES_PER_CATEGORY: usize = 100;
/// Look-alike negatives.
const NEGATIVES: usize = 1500;
/// Floors per category (what the detectors honestly reach on this corpus).
const MIN_PRECISION: f64 = 0.95;
const MIN_RECALL: f64 = 0.95;

#[derive(Default, Debug)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

#[test]
fn precision_and_recall_per_category() {
    let detector = Detector::builtin();
    let rng = Rng::new(0x5eed_2026);
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    // Every built-in category but `code` (its own test: `code_quotes.rs`).
    let categories: Vec<Category> = Category::BUILTIN
        .into_iter()
        .filter(|c| *c != Category::Code)
        .collect();
    for c in &categories {
        counts.insert(c.name().to_owned(), Counts::default());
    }
    let mut failures = Vec::new();
    let mut samples = Vec::new();
    for c in &categories {
        for _ in 0..POSITIVES_PER_CATEGORY {
            samples.push(positive(&rng, c));
        }
    }
    let n_pos = samples.len();
    for _ in 0..NEGATIVES {
        let text = negative(&rng);
        samples.push(generator::Sample {
            text,
            expected: Vec::new(),
        });
    }
    for sample in &samples {
        let found = detector.scan(&sample.text);
        let mut used = vec![false; found.len()];
        for (cat, s, e) in &sample.expected {
            let hit = found
                .iter()
                .position(|f| &f.category == cat && f.start < *e && *s < f.end);
            let entry = counts.entry(cat.name().to_owned()).or_default();
            if let Some(i) = hit {
                used[i] = true;
                entry.tp += 1;
            } else {
                entry.fn_ += 1;
                failures.push(format!(
                    "MISSED {cat}: {:?} in {:?} (found {found:?})",
                    &sample.text[*s..*e],
                    sample.text
                ));
            }
        }
        for (f, u) in found.iter().zip(&used) {
            if !u {
                counts.entry(f.category.name().to_owned()).or_default().fp += 1;
                failures.push(format!(
                    "FALSE {} ({}): {:?} in {:?}",
                    f.category,
                    f.kind,
                    &sample.text[f.start..f.end],
                    sample.text
                ));
            }
        }
    }

    println!("corpus: {n_pos} positives, {NEGATIVES} look-alike negatives");
    println!(
        "{:<14} {:>5} {:>5} {:>5} {:>9} {:>7}",
        "category", "tp", "fp", "fn", "precision", "recall"
    );
    let mut below = Vec::new();
    for (name, c) in &counts {
        let precision = if c.tp + c.fp == 0 {
            1.0
        } else {
            c.tp as f64 / (c.tp + c.fp) as f64
        };
        let recall = if c.tp + c.fn_ == 0 {
            1.0
        } else {
            c.tp as f64 / (c.tp + c.fn_) as f64
        };
        println!(
            "{name:<14} {:>5} {:>5} {:>5} {precision:>9.3} {recall:>7.3}",
            c.tp, c.fp, c.fn_
        );
        if precision < MIN_PRECISION || recall < MIN_RECALL {
            below.push(name.clone());
        }
    }
    for f in failures.iter().take(40) {
        println!("{f}");
    }

    // Speed: a 32 KiB prompt mixing everything.
    let mut big = String::new();
    let mut i = 0;
    while big.len() < 32 * 1024 {
        big.push_str(&samples[(i * 7919) % samples.len()].text);
        big.push('\n');
        i += 1;
    }
    let _ = detector.scan(&big); // warm the lazy DFA caches
    let start = Instant::now();
    let runs = 50;
    let mut n = 0;
    for _ in 0..runs {
        n += detector.scan(&big).len();
    }
    let per = start.elapsed() / runs;
    println!(
        "scan of {} bytes: {per:?} per scan ({} findings; {} build)",
        big.len(),
        n / runs as usize,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );

    assert!(n_pos >= 200 && NEGATIVES >= 300);
    assert!(below.is_empty(), "below the floors: {below:?}");
}
