//! The few protocol-buffer messages and the record framing a TensorBoard event file needs, written by hand:
//! six field kinds do not justify a code generator (and protoc at build time).
//!
//! Field numbers are those of TensorFlow's `event.proto` and `summary.proto`, TensorBoard's
//! `plugins/hparams/plugin_data.proto`, and protobuf's `struct.proto`.

/// A protobuf message being encoded: fields are appended in the order written.
#[derive(Debug, Default)]
pub(crate) struct Message(Vec<u8>);

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

impl Message {
    pub fn new() -> Self {
        Message(Vec::new())
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn key(&mut self, field: u32, wire_type: u64) {
        varint(&mut self.0, (u64::from(field) << 3) | wire_type);
    }

    /// `int32`, `int64`, `uint64`, `bool` and enums (non-negative values only, which is all we write).
    pub fn varint(mut self, field: u32, value: u64) -> Self {
        self.key(field, VARINT);
        varint(&mut self.0, value);
        self
    }

    pub fn double(mut self, field: u32, value: f64) -> Self {
        self.key(field, FIXED64);
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn float(mut self, field: u32, value: f32) -> Self {
        self.key(field, FIXED32);
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// `string`, `bytes`, and embedded messages (through [`message`](Self::message)).
    pub fn bytes(mut self, field: u32, value: &[u8]) -> Self {
        self.key(field, LEN);
        varint(&mut self.0, value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }

    pub fn string(self, field: u32, value: &str) -> Self {
        self.bytes(field, value.as_bytes())
    }

    pub fn message(self, field: u32, value: Message) -> Self {
        self.bytes(field, &value.0)
    }

    /// A `repeated double` in protobuf's packed form: one length-delimited field of little-endian values.
    pub fn packed_doubles(self, field: u32, values: &[f64]) -> Self {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.bytes(field, &bytes)
    }
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `tensorflow.Event`.
pub(crate) mod event {
    pub const WALL_TIME: u32 = 1;
    pub const STEP: u32 = 2;
    pub const FILE_VERSION: u32 = 3;
    pub const SUMMARY: u32 = 5;
}

/// `tensorflow.Summary` and its nested `Value`, `SummaryMetadata`, `SummaryMetadata.PluginData`.
pub(crate) mod summary {
    pub const VALUE: u32 = 1;
    pub const VALUE_TAG: u32 = 1;
    pub const VALUE_SIMPLE_VALUE: u32 = 2;
    pub const VALUE_IMAGE: u32 = 4;
    pub const VALUE_HISTO: u32 = 5;
    pub const VALUE_TENSOR: u32 = 8;
    pub const VALUE_METADATA: u32 = 9;
    pub const METADATA_PLUGIN_DATA: u32 = 1;
    pub const PLUGIN_NAME: u32 = 1;
    pub const PLUGIN_CONTENT: u32 = 2;
}

/// `tensorflow.Summary.Image`.
pub(crate) mod image {
    pub const HEIGHT: u32 = 1;
    pub const WIDTH: u32 = 2;
    pub const COLORSPACE: u32 = 3;
    pub const ENCODED: u32 = 4;
}

/// `tensorflow.HistogramProto`; the two lists are `packed` doubles.
pub(crate) mod histogram {
    pub const MIN: u32 = 1;
    pub const MAX: u32 = 2;
    pub const NUM: u32 = 3;
    pub const SUM: u32 = 4;
    pub const SUM_SQUARES: u32 = 5;
    pub const BUCKET_LIMIT: u32 = 6;
    pub const BUCKET: u32 = 7;
}

/// `tensorflow.TensorProto`, its `TensorShapeProto` and `TensorShapeProto.Dim`, and the `DataType` of strings.
pub(crate) mod tensor {
    pub const DTYPE: u32 = 1;
    pub const SHAPE: u32 = 2;
    pub const STRING_VAL: u32 = 8;
    pub const SHAPE_DIM: u32 = 2;
    pub const DIM_SIZE: u32 = 1;
    pub const DT_STRING: u64 = 7;
}

/// `tensorboard.hparams.HParamsPluginData`, its `SessionStartInfo`, and `google.protobuf.Value`.
pub(crate) mod hparams {
    pub const DATA_SESSION_START_INFO: u32 = 3;
    pub const START_HPARAMS: u32 = 1;
    pub const START_TIME_SECS: u32 = 5;
    /// A `map<string, Value>` entry is a message with the key as field 1 and the value as field 2.
    pub const MAP_KEY: u32 = 1;
    pub const MAP_VALUE: u32 = 2;
    pub const VALUE_NUMBER: u32 = 2;
    pub const VALUE_STRING: u32 = 3;
    pub const VALUE_BOOL: u32 = 4;
}

/// One TFRecord: the length, its masked CRC, the data, the data's masked CRC (all little-endian), the framing
/// TensorBoard's reader checks record by record.
pub(crate) fn tf_record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut record = Vec::with_capacity(data.len() + 16);
    record.extend_from_slice(&length);
    record.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    record.extend_from_slice(data);
    record.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    record
}

/// TFRecord's CRC: CRC-32C rotated right by 15 bits plus a constant, so that a CRC of data that holds CRCs
/// is not trivially related to them.
pub(crate) fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The mask spelled as TFRecord's documentation spells it, to check `rotate_right` against.
    #[allow(clippy::manual_rotate)]
    #[test]
    fn crc32c_is_the_castagnoli_one() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let crc = crc32c::crc32c(b"123456789");
        assert_eq!(masked_crc32c(b"123456789"), ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8));
    }

    #[test]
    fn varints_and_fields_encode_as_protobuf_does() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        // Event{step: 150, file_version: "a"}.
        let bytes = Message::new().varint(event::STEP, 150).string(event::FILE_VERSION, "a").into_bytes();
        assert_eq!(bytes, [0x10, 0x96, 0x01, 0x1a, 0x01, b'a']);
        let bytes = Message::new().float(summary::VALUE_SIMPLE_VALUE, 1.0).into_bytes();
        assert_eq!(bytes, [0x15, 0x00, 0x00, 0x80, 0x3f]);
    }

    #[test]
    fn a_record_frames_its_data() {
        let record = tf_record(b"abc");
        assert_eq!(record.len(), 3 + 16);
        assert_eq!(&record[..8], &3u64.to_le_bytes());
        assert_eq!(&record[12..15], b"abc");
        assert_eq!(&record[15..], &masked_crc32c(b"abc").to_le_bytes());
    }
}
