//! Hubness correction for large label sets: in a set of thousands of relations, dense
//! clusters of near-identical descriptions lie close to almost every query and take the top
//! ranks of all of them. Each corrected relation's score is lowered by its similarity to the
//! mean of the corrected relations:
//!
//! `s'(q, r) = s(q, r) − λ·(μ·r)`, `μ` = the mean of the corrected relations' vectors,
//!
//! which equals scoring with every query part moved by `−λ` times the label set's mean part
//! (hubness reduction by centring; only the relation side is known when an index is built).
//! The bias `−λ·(μ·r)` is stored as one extra vector component and every query gets a
//! constant 1 there, so the score stays one inner product and any vector search finds it.
//! Relations that are not corrected get a bias of 0.

/// λ, chosen by measurement (docs/large-label-sets.md): 0.5 and 1.5 did worse at 11,665
/// Wikidata properties.
pub const STRENGTH: f32 = 1.0;

/// Appends to each vector its bias (0 where `corrected` is false).
pub fn append_biases(vectors: &mut [Vec<f32>], corrected: &[bool], strength: f32) {
    let dim = vectors.first().map_or(0, Vec::len);
    let count = corrected.iter().filter(|&&c| c).count();
    let mut mean = vec![0.0f32; dim];
    for (v, _) in vectors.iter().zip(corrected).filter(|(_, &c)| c) {
        mean.iter_mut().zip(v).for_each(|(m, x)| *m += x / count as f32);
    }
    for (v, &c) in vectors.iter_mut().zip(corrected) {
        let bias = if c { -strength * v.iter().zip(&mean).map(|(a, b)| a * b).sum::<f32>() } else { 0.0 };
        v.push(bias);
    }
}

/// Appends the constant 1 that multiplies a relation's bias.
pub fn append_query_constant(query: &mut Vec<f32>) {
    query.push(1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn the_bias_equals_scoring_a_centred_query() {
        let mut rng = crate::testutil::Rng::new(3);
        let mut v = || (0..6).map(|_| rng.normal()).collect::<Vec<f32>>();
        let relations = vec![v(), v(), v(), v()];
        let corrected = [true, true, false, true];
        let query = v();
        let mut biased = relations.clone();
        append_biases(&mut biased, &corrected, 0.7);
        let mut q = query.clone();
        append_query_constant(&mut q);
        let mean: Vec<f32> = (0..6).map(|i| [0, 1, 3].iter().map(|&r| relations[r][i]).sum::<f32>() / 3.0).collect();
        let centred: Vec<f32> = query.iter().zip(&mean).map(|(x, m)| x - 0.7 * m).collect();
        for (r, relation) in relations.iter().enumerate() {
            let want = if corrected[r] { dot(&centred, relation) } else { dot(&query, relation) };
            assert!((dot(&q, &biased[r]) - want).abs() < 1e-5, "relation {r}");
            assert_eq!(biased[r].len(), 7);
        }
        assert_eq!(biased[2][6], 0.0, "an uncorrected relation has no bias");
    }
}
