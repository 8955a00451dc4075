//! The text format of chiapos test vectors, one proof a line:
//! `plot_id_hex, k, challenge_hex, proof_hex[, expected_quality_hex]`.

use super::batch::ProofRef;

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorLine {
    /// The plot id.
    pub plot_id: [u8; 32],
    /// The plot size as written (not range-checked: the verifier reports that).
    pub k: u8,
    /// The challenge.
    pub challenge: [u8; 32],
    /// The proof bytes as written (any length: the verifier reports a bad one).
    pub proof: Vec<u8>,
    /// The quality the line expects, when it has a fifth column.
    pub expected_quality: Option<[u8; 32]>,
}

/// Why a line does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// Not 4 or 5 comma-separated fields.
    #[error("expected 4 or 5 comma-separated fields, got {0}")]
    FieldCount(usize),
    /// A field is not valid hex, or not the right length.
    #[error("bad {field}: {reason}")]
    BadField {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl VectorLine {
    /// Parses a line (surrounding whitespace in fields is ignored).
    pub fn parse(line: &str) -> Result<VectorLine, LineError> {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if !(4..=5).contains(&fields.len()) {
            return Err(LineError::FieldCount(fields.len()));
        }
        let k = fields[1].parse::<u8>().map_err(|e| LineError::BadField {
            field: "k",
            reason: e.to_string(),
        })?;
        Ok(VectorLine {
            plot_id: hex32("plot id", fields[0])?,
            k,
            challenge: hex32("challenge", fields[2])?,
            proof: hex_bytes("proof", fields[3])?,
            expected_quality: match fields.get(4) {
                Some(q) => Some(hex32("quality", q)?),
                None => None,
            },
        })
    }

    /// The proof, borrowed for verification.
    pub fn as_proof(&self) -> ProofRef<'_> {
        ProofRef {
            plot_id: &self.plot_id,
            k: self.k,
            challenge: &self.challenge,
            proof: &self.proof,
        }
    }
}

fn hex_bytes(field: &'static str, s: &str) -> Result<Vec<u8>, LineError> {
    hex::decode(s).map_err(|e| LineError::BadField {
        field,
        reason: e.to_string(),
    })
}

fn hex32(field: &'static str, s: &str) -> Result<[u8; 32], LineError> {
    let bytes = hex_bytes(field, s)?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| LineError::BadField {
        field,
        reason: format!("{len} bytes, expected 32"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_four_and_five_fields() {
        let id = "11".repeat(32);
        let ch = "22".repeat(32);
        let q = "33".repeat(32);
        let four = VectorLine::parse(&format!("{id}, 18, {ch}, 0a0b")).unwrap();
        assert_eq!(four.k, 18);
        assert_eq!(four.proof, vec![10, 11]);
        assert_eq!(four.expected_quality, None);
        let five = VectorLine::parse(&format!(" {id},19,{ch}, , {q} ")).unwrap();
        assert_eq!(five.proof, Vec::<u8>::new());
        assert_eq!(five.expected_quality, Some([0x33; 32]));
    }

    #[test]
    fn rejects_bad_lines() {
        let id = "11".repeat(32);
        let ch = "22".repeat(32);
        assert_eq!(VectorLine::parse(""), Err(LineError::FieldCount(1)));
        assert_eq!(
            VectorLine::parse("a,b,c,d,e,f"),
            Err(LineError::FieldCount(6))
        );
        assert!(matches!(
            VectorLine::parse(&format!("{id}, 256, {ch}, 00")),
            Err(LineError::BadField { field: "k", .. })
        ));
        assert!(matches!(
            VectorLine::parse(&format!("{id}1, 18, {ch}, 00")),
            Err(LineError::BadField {
                field: "plot id",
                ..
            })
        ));
        assert!(matches!(
            VectorLine::parse(&format!("{id}, 18, {ch}00, 00")),
            Err(LineError::BadField {
                field: "challenge",
                ..
            })
        ));
        assert!(matches!(
            VectorLine::parse(&format!("{id}, 18, {ch}, 0g")),
            Err(LineError::BadField { field: "proof", .. })
        ));
    }
}
