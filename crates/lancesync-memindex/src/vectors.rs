//! Cosine nearest neighbours over int8 codes, in two steps once a table is large enough: a
//! scan of each row's projection on the table's principal components (a few dozen int8 per
//! row, so a query reads a fraction of the vectors' bytes), then the best candidates
//! re-ranked by their full int8 vectors. Both steps are plain loops the compiler vectorises.

use nalgebra::{DMatrix, SymmetricEigen};
use rayon::prelude::*;

/// Below this many rows every row's full vector is scored: projecting saves little.
pub const PROJECT_FROM_ROWS: usize = 4096;
/// Rows the principal components are computed from (evenly spaced over the table).
const SAMPLE_ROWS: usize = 8192;
/// How much larger than the sample's largest projection a component's codes reach.
const STEP_HEADROOM: f32 = 1.25;
/// The share of the rows' variance (around their mean) the projection keeps, within
/// [`MAX_COMPONENTS`].
const KEPT_VARIANCE: f64 = 0.99;
/// A projection on fewer directions than this share of the variance ranks too far from the
/// full vectors (feature hashing's vectors spread their variance over every dimension): the
/// scan then reads the full vectors instead.
const MIN_PROJECTED_VARIANCE: f64 = 0.85;
/// Projections are at most this many components: each one costs every search a byte per
/// row, and re-ranking makes up for what the rest would add.
const MAX_COMPONENTS: usize = 64;
/// Projections are this many components at least, and a multiple of it.
const COMPONENT_STEP: usize = 16;

/// Candidates the projection scan hands to re-ranking for a search of `limit` hits. On the
/// search benchmark's table (217,939 chunks, the static model, 64 components) recall@10
/// against exact search was 0.933 with 400 candidates, 0.950 with 800 and 0.953 with 1,600
/// (docs/benchmarks.md).
pub fn candidates(limit: usize) -> usize {
    (limit * 16).max(800)
}

/// A row's vector as int8 codes times one scale.
#[derive(Debug, Default)]
pub(crate) struct VectorIndex {
    dim: usize,
    /// Row-major, `dim` per row.
    codes: Vec<i8>,
    /// Per row: what a code times the query's unit vector is multiplied by to give the cosine
    /// of the (dequantised) row and the query.
    scales: Vec<f32>,
    projection: Option<Projection>,
}

/// Rows projected on the principal components.
#[derive(Debug)]
struct Projection {
    /// `components` rows of `dim`: the unit directions.
    basis: Vec<f32>,
    components: usize,
    /// Per component: what one step of a projected code is worth.
    steps: Vec<f32>,
    /// Rows in blocks of [`BLOCK`] (see [`interleave`]).
    codes: Vec<i8>,
    rows: usize,
}

/// Rows a scan scores at once.
const BLOCK: usize = 16;

/// `row_major` codes (`components` per row, an even number) laid out for [`scan`]: blocks of
/// [`BLOCK`] rows (the last one padded with zeros), in each block the codes of components
/// `2p` and `2p + 1` of its rows together, pair after pair. A scan then scores a block's rows
/// side by side, one pair of weights at a time, with no sum across a SIMD register per row.
fn interleave(row_major: &[i8], components: usize) -> Vec<i8> {
    let rows = row_major.len() / components;
    let blocks = rows.div_ceil(BLOCK);
    let mut out = vec![0i8; blocks * BLOCK * components];
    for (row, code) in row_major.chunks_exact(components).enumerate() {
        let (block, r) = (row / BLOCK, row % BLOCK);
        for pair in 0..components / 2 {
            let at = block * BLOCK * components + pair * 2 * BLOCK + 2 * r;
            out[at] = code[2 * pair];
            out[at + 1] = code[2 * pair + 1];
        }
    }
    out
}

impl VectorIndex {
    pub(crate) fn new(dim: usize) -> Self {
        Self {
            dim,
            ..Self::default()
        }
    }

    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    pub(crate) fn len(&self) -> usize {
        self.scales.len()
    }

    /// Adds the next row's vector (of `dim` values; a zero vector matches nothing).
    pub(crate) fn push(&mut self, vector: &[f32]) {
        let largest = vector.iter().fold(0f32, |m, x| m.max(x.abs()));
        let step = if largest > 0.0 { largest / 127.0 } else { 1.0 };
        let start = self.codes.len();
        self.codes.extend(
            vector
                .iter()
                .map(|x| (x / step).round().clamp(-127.0, 127.0) as i8),
        );
        let norm = self.codes[start..]
            .iter()
            .map(|&c| f32::from(c) * f32::from(c))
            .sum::<f32>()
            .sqrt();
        self.scales.push(if norm > 0.0 { 1.0 / norm } else { 0.0 });
    }

    /// Computes the projection once every row is in.
    pub(crate) fn finish(&mut self) {
        self.codes.shrink_to_fit();
        self.scales.shrink_to_fit();
        if self.len() >= PROJECT_FROM_ROWS && self.dim >= 2 * COMPONENT_STEP {
            self.projection = Some(Projection::fit(self));
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.codes.len()
            + self.scales.len() * 4
            + self
                .projection
                .as_ref()
                .map_or(0, |p| p.codes.len() + p.basis.len() * 4 + p.steps.len() * 4)
    }

    /// Components each row is projected on (0 without a projection).
    pub(crate) fn components(&self) -> usize {
        self.projection.as_ref().map_or(0, |p| p.components)
    }

    fn row(&self, row: usize) -> &[i8] {
        &self.codes[row * self.dim..(row + 1) * self.dim]
    }

    /// The row's vector, dequantised and of unit length.
    fn unit_row(&self, row: usize) -> Vec<f32> {
        let s = self.scales[row];
        self.row(row).iter().map(|&c| f32::from(c) * s).collect()
    }

    /// The `limit` rows nearest to `query` that `allow` lets through, with their cosine,
    /// best first (equal scores by row).
    pub(crate) fn nearest(
        &self,
        query: &[f32],
        limit: usize,
        allow: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if query.len() != self.dim || limit == 0 {
            return Vec::new();
        }
        let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm == 0.0 {
            return Vec::new();
        }
        let unit: Vec<f32> = query.iter().map(|x| x / norm).collect();
        let rows: Vec<u32> = match &self.projection {
            Some(p) => p.candidates(&unit, candidates(limit), &allow),
            None => (0..self.len() as u32).filter(|r| allow(*r)).collect(),
        };
        // Re-ranked in integers: the query as int16 steps against the rows' int8 codes.
        let (steps, step) = quantize_query(&unit);
        let dots = dot_rows(&self.codes, self.dim, &rows, &steps);
        let mut scored: Vec<(u32, f32)> = rows
            .into_iter()
            .zip(dots)
            .map(|(r, dot)| (r, dot as f32 * step * self.scales[r as usize]))
            .collect();
        let by_score = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if scored.len() > limit {
            scored.select_nth_unstable_by(limit, by_score);
            scored.truncate(limit);
        }
        scored.sort_unstable_by(by_score);
        scored
    }
}

impl Projection {
    /// The principal components of a sample of the rows, as many as keep
    /// [`KEPT_VARIANCE`] of their variance (at most [`MAX_COMPONENTS`] and half the
    /// dimensions), and every row
    /// projected on them.
    fn fit(index: &VectorIndex) -> Self {
        let dim = index.dim;
        let n = index.len();
        let taken = n.min(SAMPLE_ROWS);
        let sample: Vec<Vec<f32>> = (0..taken).map(|i| index.unit_row(i * n / taken)).collect();
        let mut mean = vec![0f64; dim];
        for v in &sample {
            for (m, x) in mean.iter_mut().zip(v) {
                *m += f64::from(*x);
            }
        }
        mean.iter_mut().for_each(|m| *m /= taken as f64);
        // The covariance's upper triangle, one row of it per task.
        let centred: Vec<Vec<f32>> = sample
            .iter()
            .map(|v| v.iter().zip(&mean).map(|(x, m)| x - *m as f32).collect())
            .collect();
        let upper: Vec<Vec<f64>> = (0..dim)
            .into_par_iter()
            .map(|i| {
                let mut row = vec![0f64; dim - i];
                for v in &centred {
                    let a = f64::from(v[i]);
                    for (acc, b) in row.iter_mut().zip(&v[i..]) {
                        *acc += a * f64::from(*b);
                    }
                }
                row
            })
            .collect();
        let covariance = DMatrix::from_fn(dim, dim, |i, j| {
            let (i, j) = if i <= j { (i, j) } else { (j, i) };
            upper[i][j - i] / taken as f64
        });
        let eigen = SymmetricEigen::new(covariance);
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|a, b| eigen.eigenvalues[*b].total_cmp(&eigen.eigenvalues[*a]));
        let total: f64 = eigen.eigenvalues.iter().map(|v| v.max(0.0)).sum();
        let mut kept = 0.0;
        let mut components = dim / 2;
        for (taken_so_far, &i) in order.iter().enumerate() {
            kept += eigen.eigenvalues[i].max(0.0);
            if total > 0.0 && kept / total >= KEPT_VARIANCE {
                components = taken_so_far + 1;
                break;
            }
        }
        let components = components
            .div_ceil(COMPONENT_STEP)
            .max(1)
            .saturating_mul(COMPONENT_STEP)
            .min(dim / 2)
            .min(MAX_COMPONENTS);
        let share: f64 = order[..components]
            .iter()
            .map(|&i| eigen.eigenvalues[i].max(0.0))
            .sum::<f64>()
            / total.max(f64::MIN_POSITIVE);
        let (basis, components): (Vec<f32>, usize) = if share >= MIN_PROJECTED_VARIANCE {
            let basis = order[..components]
                .iter()
                .flat_map(|&i| {
                    eigen
                        .eigenvectors
                        .column(i)
                        .iter()
                        .map(|x| *x as f32)
                        .collect::<Vec<_>>()
                })
                .collect();
            (basis, components)
        } else {
            // No few directions hold the rows (feature hashing spreads them evenly): every
            // dimension is kept, as is, so the scan ranks by the full vectors (padded to an
            // even count with a zero direction).
            let full = dim + dim % 2;
            let basis = (0..full)
                .flat_map(|c| (0..dim).map(move |d| if c == d { 1.0 } else { 0.0 }))
                .collect();
            (basis, full)
        };
        // One step per component from the sample's largest magnitude with room to spare (a
        // rarer larger one is clamped: re-ranking reads the full codes), then every row
        // projected and quantised at once, without a buffer of every projection.
        let mut steps = vec![0f32; components];
        for v in &sample {
            for (s, b) in steps.iter_mut().zip(basis.chunks_exact(dim)) {
                *s = s.max(dot_f32(b, v).abs());
            }
        }
        steps.iter_mut().for_each(|s| {
            *s = if *s > 0.0 {
                *s * STEP_HEADROOM / 127.0
            } else {
                1.0
            }
        });
        let codes: Vec<i8> = (0..n)
            .into_par_iter()
            .flat_map_iter(|r| {
                let v = index.unit_row(r);
                basis
                    .chunks_exact(dim)
                    .zip(&steps)
                    .map(move |(b, s)| (dot_f32(b, &v) / s).round().clamp(-127.0, 127.0) as i8)
            })
            .collect();
        Self {
            basis,
            components,
            steps,
            codes: interleave(&codes, components),
            rows: n,
        }
    }

    /// The `count` rows whose projections score best against `unit`'s, among those `allow`
    /// lets through. A row's projection times the query approximates its dot product with
    /// the query less the mean's, which is the same for every row.
    fn candidates(&self, unit: &[f32], count: usize, allow: &impl Fn(u32) -> bool) -> Vec<u32> {
        let dim = unit.len();
        let weights: Vec<f32> = self
            .basis
            .chunks_exact(dim)
            .zip(&self.steps)
            .map(|(b, s)| dot_f32(b, unit) * s)
            .collect();
        let largest = weights.iter().fold(0f32, |m, w| m.max(w.abs()));
        let factor = if largest > 0.0 {
            32767.0 / largest
        } else {
            0.0
        };
        let weights: Vec<i16> = weights
            .iter()
            .map(|w| (w * factor).round() as i16)
            .collect();
        scan(
            &self.codes,
            self.rows,
            self.components,
            &weights,
            count,
            allow,
        )
    }
}

/// The best `count` of `rows` rows of `codes` (`components` per row, laid out by
/// [`interleave`]) by their dot product with
/// `weights`, among those `allow` lets through, in no order: the scan every vector search
/// makes, compiled for the widest SIMD instructions the CPU has (checked at run time; the
/// build targets the baseline x86-64, whose SSE2 does a quarter of AVX-512's work per
/// instruction).
fn scan(
    codes: &[i8],
    rows: usize,
    components: usize,
    weights: &[i16],
    count: usize,
    allow: &impl Fn(u32) -> bool,
) -> Vec<u32> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: `scan_avx512` only needs AVX-512BW (and what it implies), which the CPU
            // was just found to have.
            #[allow(unsafe_code)]
            return unsafe { scan_avx512(codes, rows, components, weights, count, allow) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: `scan_avx2` only needs AVX2, which the CPU was just found to have.
            #[allow(unsafe_code)]
            return unsafe { scan_avx2(codes, rows, components, weights, count, allow) };
        }
    }
    scan_rows(codes, rows, components, weights, count, allow)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
fn scan_avx512(
    codes: &[i8],
    rows: usize,
    components: usize,
    weights: &[i16],
    count: usize,
    allow: &impl Fn(u32) -> bool,
) -> Vec<u32> {
    scan_rows(codes, rows, components, weights, count, allow)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scan_avx2(
    codes: &[i8],
    rows: usize,
    components: usize,
    weights: &[i16],
    count: usize,
    allow: &impl Fn(u32) -> bool,
) -> Vec<u32> {
    scan_rows(codes, rows, components, weights, count, allow)
}

/// [`scan`]'s loop, inlined into each of its builds: one pass keeping the rows that beat a
/// threshold, which most rows fall below. Rows are gathered until there are twice `count`,
/// then cut to the best `count`, whose worst becomes the threshold (amortised linear time; a
/// heap spent a tenth of a hybrid search's time sifting).
#[inline(always)]
fn scan_rows(
    codes: &[i8],
    rows: usize,
    components: usize,
    weights: &[i16],
    count: usize,
    allow: &impl Fn(u32) -> bool,
) -> Vec<u32> {
    let mut best = Best::new(count);
    for (block, codes) in codes.chunks_exact(BLOCK * components).enumerate() {
        let mut scores = [0i32; BLOCK];
        for (pair, w) in codes.chunks_exact(2 * BLOCK).zip(weights.chunks_exact(2)) {
            let (w0, w1) = (i32::from(w[0]), i32::from(w[1]));
            for r in 0..BLOCK {
                let part =
                    (i32::from(pair[2 * r]) * w0).wrapping_add(i32::from(pair[2 * r + 1]) * w1);
                scores[r] = scores[r].wrapping_add(part);
            }
        }
        for (r, &score) in scores.iter().enumerate() {
            let row = block * BLOCK + r;
            if score <= best.threshold || row >= rows {
                continue;
            }
            let row = row as u32;
            if allow(row) {
                best.offer(score, row);
            }
        }
    }
    best.rows()
}

/// The best `count` (score, row) pairs offered, kept as a buffer of up to twice as many above
/// a threshold. Equal scores are kept by lower row, as a heap of (score, row) kept them.
struct Best {
    count: usize,
    /// Offers at or below this cannot be among the best.
    threshold: i32,
    kept: Vec<(i32, u32)>,
}

impl Best {
    fn new(count: usize) -> Self {
        Self {
            count,
            threshold: i32::MIN,
            kept: Vec::with_capacity(2 * count.max(1)),
        }
    }

    #[inline(always)]
    fn offer(&mut self, score: i32, row: u32) {
        self.kept.push((score, row));
        if self.kept.len() >= 2 * self.count.max(1) {
            self.cut();
        }
    }

    /// Keep the best `count`; the worst of them sets the threshold.
    fn cut(&mut self) {
        if self.count == 0 {
            self.kept.clear();
            self.threshold = i32::MAX;
            return;
        }
        if self.kept.len() > self.count {
            let better = |a: &(i32, u32), b: &(i32, u32)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
            self.kept.select_nth_unstable_by(self.count - 1, better);
            self.kept.truncate(self.count);
            // Rows tied with the worst kept score may still come, with a higher row: the
            // threshold stays just below it so that they are compared, not dropped.
            self.threshold = self.kept[self.count - 1].0.saturating_sub(1);
        }
    }

    fn rows(mut self) -> Vec<u32> {
        self.cut();
        self.kept.into_iter().map(|(_, row)| row).collect()
    }
}

/// The unit vector `unit` as int16 steps, and what one step is worth: its largest component
/// is as many steps as keep any row's sum of `dim` products with int8 codes within an i32
/// (32,767 up to 516 dimensions), a precision far finer than the codes'.
fn quantize_query(unit: &[f32]) -> (Vec<i16>, f32) {
    let largest = unit.iter().fold(0f32, |m, x| m.max(x.abs()));
    if largest == 0.0 {
        return (vec![0; unit.len()], 0.0);
    }
    let fits = (i32::MAX as f64 / (127.0 * unit.len().max(1) as f64)).min(32767.0) as f32;
    let factor = fits / largest;
    let steps = unit
        .iter()
        .map(|x| (x * factor).round().clamp(-32767.0, 32767.0) as i16)
        .collect();
    (steps, 1.0 / factor)
}

/// The dot products of `rows`' codes (`dim` each) with `query`, built for the widest SIMD the
/// CPU has, as [`scan`] is.
fn dot_rows(codes: &[i8], dim: usize, rows: &[u32], query: &[i16]) -> Vec<i32> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: `dot_rows_avx512` only needs AVX-512BW (and what it implies), which the
            // CPU was just found to have.
            #[allow(unsafe_code)]
            return unsafe { dot_rows_avx512(codes, dim, rows, query) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: `dot_rows_avx2` only needs AVX2, which the CPU was just found to have.
            #[allow(unsafe_code)]
            return unsafe { dot_rows_avx2(codes, dim, rows, query) };
        }
    }
    dot_rows_plain(codes, dim, rows, query)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
fn dot_rows_avx512(codes: &[i8], dim: usize, rows: &[u32], query: &[i16]) -> Vec<i32> {
    dot_rows_plain(codes, dim, rows, query)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_rows_avx2(codes: &[i8], dim: usize, rows: &[u32], query: &[i16]) -> Vec<i32> {
    dot_rows_plain(codes, dim, rows, query)
}

/// A plain loop, not an iterator chain: a chain's `fold` is a function of its own, compiled
/// without the caller's target features (profiled: it ran at the baseline's width).
#[inline(always)]
fn dot_rows_plain(codes: &[i8], dim: usize, rows: &[u32], query: &[i16]) -> Vec<i32> {
    let mut dots = Vec::with_capacity(rows.len());
    for &r in rows {
        let start = r as usize * dim;
        dots.push(dot_i8_i16(&codes[start..start + dim], query));
    }
    dots
}

/// The dot product of int8 codes and int16 weights, in lanes. Wrapping arithmetic: the sums
/// fit (see [`quantize_query`]), and unchecked operations vectorise in every profile.
#[inline(always)]
fn dot_i8_i16(codes: &[i8], weights: &[i16]) -> i32 {
    let mut lanes = [0i32; LANES];
    let whole = (codes.len().min(weights.len()) / LANES) * LANES;
    for (c, w) in codes[..whole]
        .chunks_exact(LANES)
        .zip(weights[..whole].chunks_exact(LANES))
    {
        for i in 0..LANES {
            lanes[i] = lanes[i].wrapping_add(i32::from(c[i]) * i32::from(w[i]));
        }
    }
    let mut sum = lanes.iter().fold(0i32, |a, b| a.wrapping_add(*b));
    for (c, w) in codes[whole..].iter().zip(&weights[whole..]) {
        sum = sum.wrapping_add(i32::from(*c) * i32::from(*w));
    }
    sum
}

/// Lanes the dot products accumulate in: independent sums the compiler keeps in one SIMD
/// register, where one running sum would be a chain of dependent additions.
const LANES: usize = 16;

/// The dot product of two float vectors, in lanes as [`dot_i8_i16`].
#[inline(always)]
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let whole = (a.len().min(b.len()) / LANES) * LANES;
    for (x, y) in a[..whole]
        .chunks_exact(LANES)
        .zip(b[..whole].chunks_exact(LANES))
    {
        for i in 0..LANES {
            lanes[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for (x, y) in a[whole..].iter().zip(&b[whole..]) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_rows_are_kept_whatever_the_order_offered() {
        let scores: Vec<i32> = (0..5000u32).map(|i| ((i * 7919) % 1013) as i32).collect();
        let mut best = Best::new(100);
        for (row, &score) in scores.iter().enumerate() {
            if score > best.threshold {
                best.offer(score, row as u32);
            }
        }
        let mut kept = best.rows();
        kept.sort_unstable();
        let mut expected: Vec<u32> = (0..scores.len() as u32).collect();
        expected.sort_by(|a, b| scores[*b as usize].cmp(&scores[*a as usize]).then(a.cmp(b)));
        expected.truncate(100);
        expected.sort_unstable();
        assert_eq!(kept, expected);
    }

    #[test]
    fn a_quantised_query_gives_the_float_dot_product() {
        let unit: Vec<f32> = (0..384).map(|i| ((i as f32) * 0.37).sin()).collect();
        let norm = unit.iter().map(|x| x * x).sum::<f32>().sqrt();
        let unit: Vec<f32> = unit.iter().map(|x| x / norm).collect();
        let codes: Vec<i8> = (0..384).map(|i| ((i * 31) % 255) as i8).collect();
        let (steps, step) = quantize_query(&unit);
        let exact: f32 = codes
            .iter()
            .zip(&unit)
            .map(|(c, u)| f32::from(*c) * u)
            .sum();
        let quantised = dot_i8_i16(&codes, &steps) as f32 * step;
        assert!(
            (exact - quantised).abs() < 1e-3 * exact.abs().max(1.0),
            "{exact} {quantised}"
        );
        // Wide vectors stay within an i32.
        let wide = vec![1.0f32 / (4096f32).sqrt(); 4096];
        let (steps, step) = quantize_query(&wide);
        let dot = dot_i8_i16(&vec![127i8; 4096], &steps);
        assert!(
            dot > 0 && ((dot as f32 * step) - 127.0 * 64.0).abs() < 1.0,
            "{dot}"
        );
    }

    /// Vectors with a few strong directions and noise: what sentence vectors look like to a
    /// projection (a deterministic generator, no seed to pass around).
    pub(crate) fn clustered(rows: usize, dim: usize) -> Vec<Vec<f32>> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        let centres: Vec<Vec<f32>> = (0..64)
            .map(|_| (0..dim).map(|_| next()).collect())
            .collect();
        (0..rows)
            .map(|i| {
                let c = &centres[i % centres.len()];
                c.iter().map(|x| x + 0.35 * next()).collect()
            })
            .collect()
    }

    fn exact(vectors: &[Vec<f32>], query: &[f32], k: usize) -> Vec<u32> {
        let unit = |v: &[f32]| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / n).collect::<Vec<_>>()
        };
        let q = unit(query);
        let mut scored: Vec<(u32, f32)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32, unit(v).iter().zip(&q).map(|(a, b)| a * b).sum()))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.into_iter().take(k).map(|(r, _)| r).collect()
    }

    fn index(vectors: &[Vec<f32>]) -> VectorIndex {
        let mut index = VectorIndex::new(vectors[0].len());
        for v in vectors {
            index.push(v);
        }
        index.finish();
        index
    }

    #[test]
    fn projected_search_finds_what_exact_search_finds() {
        let vectors = clustered(20_000, 64);
        let index = index(&vectors);
        assert!(index.components() > 0 && index.components() <= 32);
        let mut found = 0;
        let queries = 40;
        for q in 0..queries {
            let query: Vec<f32> = vectors[q * 37]
                .iter()
                .zip(&vectors[q * 91 + 5])
                .map(|(a, b)| a + b)
                .collect();
            let want = exact(&vectors, &query, 10);
            let got = index.nearest(&query, 10, |_| true);
            found += got.iter().filter(|(r, _)| want.contains(r)).count();
            // Scores are cosines of the int8 vectors: within a hundredth of the exact ones.
            let (best, score) = got[0];
            let v = &vectors[best as usize];
            let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            let cos = v.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>() / n(v) / n(&query);
            assert!((score - cos).abs() < 0.01, "{score} vs {cos}");
        }
        let recall = found as f64 / (queries * 10) as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
    }

    #[test]
    fn vectors_without_a_few_main_directions_are_scanned_whole() {
        // Feature-hashing-like vectors: a few of 128 dimensions set per row, as many sparse
        // queries, whose best match a projection would miss.
        let mut state = 11u64;
        let mut next = move |n: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            ((state >> 33) % n) as usize
        };
        let sparse = |next: &mut dyn FnMut(u64) -> usize| {
            let mut v = vec![0f32; 128];
            for _ in 0..6 {
                v[next(128)] += 1.0;
            }
            v
        };
        let vectors: Vec<Vec<f32>> = (0..6_000).map(|_| sparse(&mut next)).collect();
        let index = index(&vectors);
        assert_eq!(index.components(), 128, "the full vectors");
        for q in 0..30 {
            let query = sparse(&mut next);
            let want = exact(&vectors, &query, 1);
            let got = index.nearest(&query, 10, |_| true);
            let best = |r: u32| {
                let v = &vectors[r as usize];
                v.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>()
                    / v.iter().map(|x| x * x).sum::<f32>().sqrt()
            };
            assert!(
                (best(got[0].0) - best(want[0])).abs() < 1e-4,
                "query {q}: the best match is found"
            );
        }
    }

    #[test]
    fn every_build_of_the_scan_finds_the_same_rows() {
        let mut state = 7u32;
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as i8
        };
        for components in [16, 48, 64, 70] {
            // 5,000 rows: the last block is padded.
            let codes: Vec<i8> = (0..5_000 * components).map(|_| next()).collect();
            let weights: Vec<i16> = (0..components).map(|_| i16::from(next()) * 200).collect();
            let blocked = interleave(&codes, components);
            let rows = codes.len() / components;
            let mut dispatched = scan(&blocked, rows, components, &weights, 300, &|r| r % 3 != 0);
            let mut baseline =
                scan_rows(&blocked, rows, components, &weights, 300, &|r| r % 3 != 0);
            // And both equal a plain dot product per row.
            let mut plain: Vec<(i32, u32)> = codes
                .chunks_exact(components)
                .enumerate()
                .filter(|(r, _)| r % 3 != 0)
                .map(|(r, c)| (dot_i8_i16(c, &weights), r as u32))
                .collect();
            plain.sort_unstable_by(|a, b| b.cmp(a));
            let least_kept = plain[299].0;
            dispatched.sort_unstable();
            baseline.sort_unstable();
            assert_eq!(dispatched, baseline, "{components} components");
            assert_eq!(baseline.len(), 300);
            let by_row: std::collections::HashMap<u32, i32> =
                plain.iter().map(|(s, r)| (*r, *s)).collect();
            assert!(baseline.iter().all(|r| by_row[r] >= least_kept));
        }
    }

    #[test]
    fn small_tables_are_scored_whole_and_filters_apply() {
        let vectors = clustered(500, 32);
        let index = index(&vectors);
        assert_eq!(index.components(), 0);
        let got = index.nearest(&vectors[7], 5, |_| true);
        assert_eq!(got[0].0, 7);
        assert!((got[0].1 - 1.0).abs() < 0.01);
        let odd = index.nearest(&vectors[7], 5, |r| r % 2 == 1);
        assert!(odd.iter().all(|(r, _)| r % 2 == 1) && odd.len() == 5);
        assert!(index.nearest(&[0.0; 32], 5, |_| true).is_empty());
        assert!(
            index.nearest(&[1.0; 31], 5, |_| true).is_empty(),
            "wrong length"
        );
    }

    #[test]
    fn a_filter_reaches_past_the_unfiltered_best() {
        let vectors = clustered(10_000, 64);
        let index = index(&vectors);
        // Only one row in a thousand may be returned.
        let got = index.nearest(&vectors[3], 10, |r| r % 1000 == 999);
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|(r, _)| r % 1000 == 999));
    }
}
