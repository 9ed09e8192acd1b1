//! Fitting a static model's table to the teacher's sentence vectors (the idea of Tokenlearn):
//! after distillation token by token, the table is adjusted so that the mean of a sentence's
//! token rows comes near the teacher's vector for the whole sentence. Token by token, a
//! vector only knows its token alone; fitted to sentences, it learns how the teacher weighs
//! and combines tokens in use (SciFact's train queries: nDCG@10 0.442 before the fit, 0.52
//! after; docs/benchmarks.md).
//!
//! The sentences are WordNet 3.0's glosses ("dress uniform: a military uniform worn on formal
//! occasions"): general English, covering most of the vocabulary, under a licence that lets
//! anyone use them, and installed from PyPI by `scripts/env.sh` beside the model.
//!
//! The fit is ridge regression towards the distilled table, solved by conjugate gradients:
//! minimise `|X T - s Y|^2 + lambda |T - T0|^2`, where `X` holds each sentence's token shares
//! (a token's count over the sentence's length), `Y` the teacher's vectors (centred), `s` the
//! typical norm of a sentence's mean row in `T0`, so that targets and table share a scale.
//! Tokens no sentence holds keep their distilled rows.

use std::path::Path;

use rayon::prelude::*;

use crate::{Error, Result};

/// The WordNet 3.0 database files whose glosses are read.
const WORDNET_FILES: [&str; 4] = ["data.noun", "data.verb", "data.adj", "data.adv"];

/// Whether `folder` holds a WordNet 3.0 database.
pub(crate) fn is_wordnet(folder: &Path) -> bool {
    WORDNET_FILES.iter().all(|f| folder.join(f).is_file())
}

/// At most `limit` glosses of the WordNet database in `folder`, each with its synset's words
/// ("dress uniform: a military uniform worn on formal occasions"), spread evenly over the
/// database (every k-th), in a fixed order: the same database gives the same sentences.
pub(crate) fn wordnet_glosses(folder: &Path, limit: usize) -> Result<Vec<String>> {
    let mut all = Vec::new();
    for file in WORDNET_FILES {
        let path = folder.join(file);
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::Embed(format!("reading WordNet's {}: {e}", path.display())))?;
        all.extend(
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter_map(gloss_of_line),
        );
    }
    if all.is_empty() {
        return Err(Error::Embed(format!(
            "no glosses in the WordNet database in {}",
            folder.display()
        )));
    }
    let step = all.len().div_ceil(limit.max(1));
    Ok(all.into_iter().step_by(step).collect())
}

/// The sentence of one line of a WordNet `data.*` file: `offset lex_filenum ss_type w_cnt
/// word lex_id [word lex_id...] ... | gloss`, `w_cnt` in hexadecimal. The licence's lines at
/// the top start with two spaces and give nothing.
fn gloss_of_line(line: &str) -> Option<String> {
    if line.starts_with("  ") {
        return None;
    }
    let (head, gloss) = line.split_once('|')?;
    let fields: Vec<&str> = head.split_whitespace().collect();
    let count = usize::from_str_radix(fields.get(3)?, 16).ok()?;
    let words: Vec<String> = (0..count)
        .filter_map(|i| fields.get(4 + 2 * i))
        .map(|w| w.replace('_', " "))
        .collect();
    let gloss = gloss.trim();
    (!words.is_empty() && !gloss.is_empty()).then(|| format!("{}: {gloss}", words.join(", ")))
}

/// The ridge penalty towards the distilled table, against a sentence's token shares (a token
/// in one gloss of 20 tokens weighs 1/400 in `X'X`). SciFact's train queries: 1e-2 ranked
/// 0.548 against 0.544 at 1e-3; 1e-1 keeps the table too near the start (docs/benchmarks.md).
const LAMBDA: f32 = 1e-2;
/// Conjugate-gradient steps: with the default glosses, 30 rank as 60 do on SciFact's train
/// queries (whole documents, 0.524 and 0.521) and 15 lower (0.512).
const STEPS: usize = 30;

/// The sentences' token shares, by sentence and by token.
struct Shares {
    /// Per sentence: (token, share) pairs.
    by_sentence: Vec<Vec<(u32, f32)>>,
    /// Per token: (sentence, share) pairs.
    by_token: Vec<Vec<(u32, f32)>>,
}

impl Shares {
    fn new(sentences: &[Vec<u32>], vocabulary: usize) -> Self {
        let by_sentence: Vec<Vec<(u32, f32)>> = sentences
            .iter()
            .map(|ids| {
                let share = 1.0 / ids.len().max(1) as f32;
                ids.iter()
                    .filter(|&&t| (t as usize) < vocabulary)
                    .map(|&t| (t, share))
                    .collect()
            })
            .collect();
        let mut by_token: Vec<Vec<(u32, f32)>> = vec![Vec::new(); vocabulary];
        for (s, pairs) in by_sentence.iter().enumerate() {
            for &(t, share) in pairs {
                by_token[t as usize].push((s as u32, share));
            }
        }
        Self {
            by_sentence,
            by_token,
        }
    }

    /// `X T`: each sentence's weighted sum of token rows.
    fn forward(&self, table: &[f32], dim: usize) -> Vec<f32> {
        weighted_sums(&self.by_sentence, table, dim)
    }

    /// `X' Z`: each token's weighted sum of sentence rows.
    fn backward(&self, per_sentence: &[f32], dim: usize) -> Vec<f32> {
        weighted_sums(&self.by_token, per_sentence, dim)
    }

    /// `(X' X + lambda) P`.
    fn normal(&self, p: &[f32], dim: usize) -> Vec<f32> {
        let mut out = self.backward(&self.forward(p, dim), dim);
        out.par_iter_mut()
            .zip(p)
            .for_each(|(o, v)| *o += LAMBDA * v);
        out
    }
}

/// One output row per entry of `pairs`: the sum of `share * rows[index]` over its pairs.
fn weighted_sums(pairs: &[Vec<(u32, f32)>], rows: &[f32], dim: usize) -> Vec<f32> {
    let mut out = vec![0f32; pairs.len() * dim];
    out.par_chunks_mut(dim).zip(pairs).for_each(|(row, pairs)| {
        for &(index, share) in pairs {
            let from = &rows[index as usize * dim..][..dim];
            row.iter_mut().zip(from).for_each(|(o, v)| *o += share * v);
        }
    });
    out
}

/// Per column of a row-major `[rows × dim]` matrix pair, the sum of `a * b`.
fn column_dots(a: &[f32], b: &[f32], dim: usize) -> Vec<f64> {
    a.par_chunks(dim)
        .zip(b.par_chunks(dim))
        .fold(
            || vec![0f64; dim],
            |mut acc, (x, y)| {
                for ((s, u), v) in acc.iter_mut().zip(x).zip(y) {
                    *s += (*u as f64) * (*v as f64);
                }
                acc
            },
        )
        .reduce(
            || vec![0f64; dim],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

/// Per column, `num / den` (0 where `den` is not positive: that column has converged).
fn column_ratios(num: &[f64], den: &[f64]) -> Vec<f32> {
    num.iter()
        .zip(den)
        .map(|(n, d)| if *d > 0.0 { (n / d) as f32 } else { 0.0 })
        .collect()
}

/// `x += y * coef`, with one coefficient per column of the row-major `[rows × dim]` pair.
fn add_scaled_columns(x: &mut [f32], y: &[f32], coef: &[f32], dim: usize) {
    x.par_chunks_mut(dim)
        .zip(y.par_chunks(dim))
        .for_each(|(x, y)| {
            for ((x, y), c) in x.iter_mut().zip(y).zip(coef) {
                *x += c * y;
            }
        });
}

/// Fit `table` (`[vocabulary × dim]`, row-major) so that the mean of each sentence's token
/// rows (`sentences`: token ids) comes near its teacher vector (`targets`).
pub(crate) fn fit(table: &mut [f32], dim: usize, sentences: &[Vec<u32>], targets: &[Vec<f32>]) {
    let vocabulary = table.len() / dim;
    let shares = Shares::new(sentences, vocabulary);
    let start = table.to_vec();

    // Targets: centred (the direction all sentences share says nothing about any), scaled to
    // the norm a sentence's mean row typically has in the distilled table.
    let mut norms: Vec<f32> = shares
        .forward(&start, dim)
        .chunks(dim)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    norms.sort_by(f32::total_cmp);
    let scale = norms.get(norms.len() / 2).copied().unwrap_or(1.0);
    let mut mean = vec![0f32; dim];
    for t in targets {
        mean.iter_mut().zip(t).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut()
        .for_each(|m| *m /= targets.len().max(1) as f32);
    let y: Vec<f32> = targets
        .iter()
        .flat_map(|t| t.iter().zip(&mean).map(|(v, m)| (v - m) * scale))
        .collect();

    // Conjugate gradients on (X'X + lambda) T = X'Y + lambda T0, every column at once,
    // starting from T0.
    let mut b = shares.backward(&y, dim);
    b.par_iter_mut()
        .zip(&start)
        .for_each(|(b, t)| *b += LAMBDA * t);
    let applied = shares.normal(table, dim);
    let mut r: Vec<f32> = b.iter().zip(&applied).map(|(b, a)| b - a).collect();
    let mut p = r.clone();
    let mut rs = column_dots(&r, &r, dim);
    for _ in 0..STEPS {
        let ap = shares.normal(&p, dim);
        let alpha = column_ratios(&rs, &column_dots(&p, &ap, dim));
        add_scaled_columns(table, &p, &alpha, dim);
        let minus_alpha: Vec<f32> = alpha.iter().map(|a| -a).collect();
        add_scaled_columns(&mut r, &ap, &minus_alpha, dim);
        let next = column_dots(&r, &r, dim);
        let beta = column_ratios(&next, &rs);
        // p = r + beta p
        p.par_chunks_mut(dim)
            .zip(r.par_chunks(dim))
            .for_each(|(p, r)| {
                for ((p, r), b) in p.iter_mut().zip(r).zip(&beta) {
                    *p = r + b * *p;
                }
            });
        rs = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gloss_line_gives_its_words_and_gloss() {
        let line = "03252064 06 n 02 dress_uniform 0 full_dress 0 001 @ 04509417 n 0000 | a military uniform worn on formal occasions  ";
        assert_eq!(
            gloss_of_line(line).as_deref(),
            Some("dress uniform, full dress: a military uniform worn on formal occasions")
        );
        // Eleven words: the count is hexadecimal.
        let many = format!(
            "00001740 03 n 0b {} 000 | many words",
            (0..11)
                .map(|i| format!("w{i} 0"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(
            gloss_of_line(&many)
                .unwrap()
                .starts_with("w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10: many")
        );
        assert_eq!(
            gloss_of_line("  1 This software and database is being provided"),
            None
        );
        assert_eq!(gloss_of_line("00001740 03 n 01 entity 0 000 |   "), None);
        assert_eq!(gloss_of_line("garbage"), None);
    }

    #[test]
    fn glosses_are_spread_over_the_database_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        for (file, n) in WORDNET_FILES.iter().zip([6, 2, 1, 1]) {
            let lines: String = (0..n)
                .map(|i| format!("{i:08} 03 n 01 {file}{i} 0 000 | gloss {i} of {file}\n"))
                .collect();
            std::fs::write(dir.path().join(file), format!("  1 licence\n{lines}")).unwrap();
        }
        assert!(is_wordnet(dir.path()));
        assert_eq!(wordnet_glosses(dir.path(), 100).unwrap().len(), 10);
        let five = wordnet_glosses(dir.path(), 5).unwrap();
        assert_eq!(five.len(), 5);
        assert_eq!(five[0], "data.noun0: gloss 0 of data.noun");
        assert!(five.iter().any(|g| g.starts_with("data.verb")), "{five:?}");
        assert_eq!(
            five,
            wordnet_glosses(dir.path(), 5).unwrap(),
            "the same every time"
        );
    }

    #[test]
    fn the_fit_moves_sentence_means_towards_their_targets_and_leaves_unseen_tokens() {
        // Four tokens in two dimensions; token 3 is in no sentence.
        let mut table = vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5, -0.5];
        let sentences = vec![vec![0, 1], vec![1, 2], vec![0, 2, 2]];
        let targets = vec![vec![1.0, -1.0], vec![-1.0, 1.0], vec![0.5, 0.5]];
        // The fit aims at the centred targets (their mean is (1/6, 1/6)).
        let centred: Vec<Vec<f32>> = targets
            .iter()
            .map(|t| t.iter().map(|v| v - 1.0 / 6.0).collect())
            .collect();
        let error = |table: &[f32]| -> f32 {
            let shares = Shares::new(&sentences, 4);
            let means = shares.forward(table, 2);
            // Compare directions, as cosine search does (the fit also centres and scales).
            means
                .chunks(2)
                .zip(&centred)
                .map(|(m, t)| {
                    let n = (m[0] * m[0] + m[1] * m[1]).sqrt().max(1e-9);
                    let c = (t[0] * t[0] + t[1] * t[1]).sqrt();
                    1.0 - (m[0] * t[0] + m[1] * t[1]) / (n * c)
                })
                .sum()
        };
        let before = error(&table);
        fit(&mut table, 2, &sentences, &targets);
        assert!(
            error(&table) < before * 0.5,
            "{before} -> {}",
            error(&table)
        );
        assert_eq!(&table[6..], &[0.5, -0.5], "an unseen token keeps its row");
        assert!(table.iter().all(|v| v.is_finite()));
    }
}
