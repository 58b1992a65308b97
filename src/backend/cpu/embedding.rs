//! BERT input embeddings: `word[id] + position[p] + token_type[0]` per token.
use super::parallel::for_each_row;

/// `out: [T × d]` for packed sequences (`starts` as in attention); positions restart at 0 in
/// every sequence. `word: [V × d]`, `position: [P × d]`, `token_type0: [d]`. Ids and
/// positions must be in range (the model checks them before calling).
pub fn embeddings_forward(ids: &[u32], starts: &[usize], word: &[f32], position: &[f32], token_type0: &[f32], out: &mut [f32]) {
    let d = token_type0.len();
    assert_eq!(out.len(), ids.len() * d);
    let mut positions = Vec::with_capacity(ids.len());
    for seq in starts.windows(2) {
        positions.extend(0..seq[1] - seq[0]);
    }
    assert_eq!(positions.len(), ids.len(), "sequence starts do not cover the ids");
    for_each_row(out, d, |t, row| {
        let w = &word[ids[t] as usize * d..][..d];
        let p = &position[positions[t] * d..][..d];
        for c in 0..d {
            row[c] = w[c] + p[c] + token_type0[c];
        }
    });
}

/// Backward of [`embeddings_forward`]: scatter-adds `d_out: [T × d]` into the tables'
/// gradients (`+=`): `d_word[ids[t]] += d_out[t]`, `d_position[p(t)] += d_out[t]`,
/// `d_token_type0 += Σ_t d_out[t]`. `d_word: [V × d]`, `d_position: [P × d]`,
/// `d_token_type0: [d]`.
///
/// The word gradient is stored dense but written sparsely: only the rows of ids present in
/// the batch are touched (`O(T·d)`, not `O(V·d)`), and their sorted, deduplicated list is
/// returned so that an optimizer or the zeroing between steps can visit only those rows.
/// Serial: duplicate ids would race, and `T·d` additions take about a millisecond.
pub fn embeddings_backward(ids: &[u32], starts: &[usize], d_out: &[f32], d_word: &mut [f32], d_position: &mut [f32], d_token_type0: &mut [f32]) -> Vec<u32> {
    let d = d_token_type0.len();
    assert_eq!(d_out.len(), ids.len() * d);
    assert_eq!(*starts.last().unwrap_or(&0), ids.len(), "sequence starts do not cover the ids");
    for seq in starts.windows(2) {
        for (p, t) in (seq[0]..seq[1]).enumerate() {
            let g = &d_out[t * d..(t + 1) * d];
            let w = &mut d_word[ids[t] as usize * d..][..d];
            w.iter_mut().zip(g).for_each(|(a, b)| *a += b);
            let pos = &mut d_position[p * d..][..d];
            pos.iter_mut().zip(g).for_each(|(a, b)| *a += b);
        }
    }
    super::parallel::column_sums(d_out, d, d_token_type0);
    let mut touched = ids.to_vec();
    touched.sort_unstable();
    touched.dedup();
    touched
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn reference64(ids: &[u32], starts: &[usize], word: &[f64], position: &[f64], tt: &[f64]) -> Vec<f64> {
        let d = tt.len();
        let mut out = Vec::new();
        for seq in starts.windows(2) {
            for (p, t) in (seq[0]..seq[1]).enumerate() {
                out.extend((0..d).map(|c| word[ids[t] as usize * d + c] + position[p * d + c] + tt[c]));
            }
        }
        out
    }

    #[test]
    fn backward_matches_finite_differences() {
        // Repeated ids (the scatter must add, not overwrite), a length-1 sequence, d = 5.
        let (v, pmax, d) = (7, 6, 5);
        let ids = [3u32, 1, 3, 0, 6, 3, 1, 2, 5, 5];
        let starts = starts_of(&[4, 1, 5]);
        let mut rng = Rng::new(2);
        let (word, position, tt, r) = (rng.normals(v * d, 1.0), rng.normals(pmax * d, 1.0), rng.normals(d, 1.0), rng.normals(ids.len() * d, 1.0));
        let (w64, p64, t64) = (to_f64(&word), to_f64(&position), to_f64(&tt));
        let want_w = numeric_grad(&w64, FD_STEP, |w| dot(&r, &reference64(&ids, &starts, w, &p64, &t64)));
        let want_p = numeric_grad(&p64, FD_STEP, |p| dot(&r, &reference64(&ids, &starts, &w64, p, &t64)));
        let want_t = numeric_grad(&t64, FD_STEP, |t| dot(&r, &reference64(&ids, &starts, &w64, &p64, t)));

        let mut out = vec![0.0; ids.len() * d];
        embeddings_forward(&ids, &starts, &word, &position, &tt, &mut out);
        assert_close("forward", &out, &reference64(&ids, &starts, &w64, &p64, &t64), 1e-6, 1e-6);
        let (mut dw, mut dp, mut dt) = (vec![0.0f32; v * d], vec![0.0f32; pmax * d], vec![0.0f32; d]);
        let touched = embeddings_backward(&ids, &starts, &r, &mut dw, &mut dp, &mut dt);
        assert_eq!(touched, [0, 1, 2, 3, 5, 6]);
        assert!(dw[4 * d..5 * d].iter().all(|&g| g == 0.0), "an absent id's row is untouched");
        assert_grad("d_word", &dw, &want_w);
        assert_grad("d_position", &dp, &want_p);
        assert_grad("d_token_type0", &dt, &want_t);
    }
}
