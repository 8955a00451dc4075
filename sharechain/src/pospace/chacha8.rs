//! ChaCha8 keystream in the original (Bernstein) layout, as chiapos uses it for F1.
//!
//! State: the "expand 32-byte k" constants, eight little-endian key words, a 64-bit block counter
//! in words 12–13 and a 64-bit IV in words 14–15; eight rounds (four double rounds). This is not
//! the IETF variant (32-bit counter, 96-bit nonce), and not ChaCha20.

/// "expand 32-byte k" as four little-endian words.
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// Bytes in one keystream block.
pub const BLOCK_BYTES: usize = 64;

/// A keyed ChaCha8 instance; each block is computed independently from its counter.
#[derive(Debug, Clone)]
pub struct ChaCha8 {
    input: [u32; 16],
}

impl ChaCha8 {
    /// Key setup with a 256-bit key and a 64-bit IV (chiapos passes a zero IV).
    pub fn new(key: &[u8; 32], iv: &[u8; 8]) -> Self {
        let mut input = [0u32; 16];
        input[..4].copy_from_slice(&SIGMA);
        for (word, chunk) in input[4..12].iter_mut().zip(key.chunks_exact(4)) {
            *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        input[14] = u32::from_le_bytes([iv[0], iv[1], iv[2], iv[3]]);
        input[15] = u32::from_le_bytes([iv[4], iv[5], iv[6], iv[7]]);
        ChaCha8 { input }
    }

    /// The keystream block at `counter`, written to `out` (64 bytes).
    #[inline]
    pub fn block_into(&self, counter: u64, out: &mut [u8; BLOCK_BYTES]) {
        let mut j = self.input;
        j[12] = counter as u32;
        j[13] = (counter >> 32) as u32;
        let mut x = j;
        for _ in 0..4 {
            quarter_round(&mut x, 0, 4, 8, 12);
            quarter_round(&mut x, 1, 5, 9, 13);
            quarter_round(&mut x, 2, 6, 10, 14);
            quarter_round(&mut x, 3, 7, 11, 15);
            quarter_round(&mut x, 0, 5, 10, 15);
            quarter_round(&mut x, 1, 6, 11, 12);
            quarter_round(&mut x, 2, 7, 8, 13);
            quarter_round(&mut x, 3, 4, 9, 14);
        }
        for ((chunk, xi), ji) in out.chunks_exact_mut(4).zip(x).zip(j) {
            chunk.copy_from_slice(&xi.wrapping_add(ji).to_le_bytes());
        }
    }

    /// The keystream block at `counter`.
    #[cfg(test)]
    pub fn block(&self, counter: u64) -> [u8; BLOCK_BYTES] {
        let mut out = [0u8; BLOCK_BYTES];
        self.block_into(counter, &mut out);
        out
    }
}

#[inline(always)]
fn quarter_round(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(16);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(12);
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(8);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(7);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    fn keystream(key: &str, iv: &str, blocks: u64) -> String {
        let key: [u8; 32] = hex::decode(key).unwrap().try_into().unwrap();
        let iv: [u8; 8] = hex::decode(iv).unwrap().try_into().unwrap();
        let c = ChaCha8::new(&key, &iv);
        (0..blocks).map(|i| hex::encode(c.block(i))).collect()
    }

    /// 8-round, 256-bit-key vectors of draft-strombergson-chacha-test-vectors-01 (TC1, TC2, TC3,
    /// TC4, TC8): the first two keystream blocks.
    #[test]
    fn strombergson_test_vectors() {
        let cases = [
            (
                "0000000000000000000000000000000000000000000000000000000000000000",
                "0000000000000000",
                "3e00ef2f895f40d67f5bb8e81f09a5a12c840ec3ce9a7f3b181be188ef711a1e\
                 984ce172b9216f419f445367456d5619314a42a3da86b001387bfdb80e0cfe42\
                 d2aefa0deaa5c151bf0adb6c01f2a5adc0fd581259f9a2aadcf20f8fd566a26b\
                 5032ec38bbc5da98ee0c6f568b872a65a08abf251deb21bb4b56e5d8821e68aa",
            ),
            (
                "0100000000000000000000000000000000000000000000000000000000000000",
                "0000000000000000",
                "cf5ee9a0494aa9613e05d5ed725b804b12f4a465ee635acc3a311de8740489ea\
                 289d04f43c7518db56eb4433e498a1238cd8464d3763ddbb9222ee3bd8fae3c8\
                 b4355a7d93dd8867089ee643558b95754efa2bd1a8a1e2d75bcdb32015542638\
                 291941feb49965587c4fdfe219cf0ec132a6cd4dc067392e67982fe53278c0b4",
            ),
            (
                "0000000000000000000000000000000000000000000000000000000000000000",
                "0100000000000000",
                "2b8f4bb3798306ca5130d47c4f8d4ed13aa0edccc1be6942090faeeca0d7599b\
                 7ff0fe616bb25aa0153ad6fdc88b954903c22426d478b97b22b8f9b1db00cf06\
                 470bdffbc488a8b7c701ebf4061d75c5969186497c95367809afa80bd843b040\
                 a79abc6e73a91757f1db73c8eacfa543b38f289d065ab2f3032d377b8c37fe46",
            ),
            (
                "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "ffffffffffffffff",
                "e163bbf8c9a739d18925ee8362dad2cdc973df05225afb2aa26396f2a9849a4a\
                 445e0547d31c1623c537df4ba85c70a9884a35bcbf3dfab077e98b0f68135f54\
                 81d4933f8b322ac0cd762c27235ce2b31534e0244a9a2f1fd5e94498d47ff108\
                 790c009cf9e1a348032a7694cb28024cd96d3498361edb1785af752d187ab54b",
            ),
            (
                "c46ec1b18ce8a878725a37e780dfb7351f68ed2e194c79fbc6aebee1a667975d",
                "1ada31d5cf688221",
                "838751b42d8ddd8a3d77f48825a2ba752cf4047cb308a5978ef274973be374c9\
                 6ad848065871417b08f034e681fe46a93f7d5c61d1306614d4aaf257a7cff08b\
                 16f2fda170cc18a4b58a2667ed962774af792a6e7f3c77992540711a7a136d7e\
                 8a2f8d3f93816709d45a3fa5f8ce72fde15be7b841acba3a2abd557228d9fe4f",
            ),
        ];
        for (key, iv, expected) in cases {
            assert_eq!(keystream(key, iv, 2), expected, "key {key} iv {iv}");
        }
    }

    /// rand_chacha's ChaCha8Rng is the same cipher (64-bit counter, zero stream id): compare
    /// blocks far into the stream, where the counter's high word is in use.
    #[test]
    fn matches_rand_chacha_at_any_counter() {
        let key: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(1));
        let c = ChaCha8::new(&key, &[0; 8]);
        let mut rng = rand_chacha::ChaCha8Rng::from_seed(key);
        for counter in [0u64, 1, 7, 1 << 20, (1 << 32) - 1, 1 << 32, (1 << 40) + 3] {
            rng.set_word_pos(u128::from(counter) * 16);
            let mut expected = [0u8; 64];
            rng.fill_bytes(&mut expected);
            assert_eq!(c.block(counter), expected, "counter {counter}");
        }
    }
}
