//! Random bytes into every decoder: a typed error or audio, never a panic.

use proptest::prelude::*;
use voxgate_codecs::dtmf::TelephoneEvent;
use voxgate_codecs::g711::G711Law;
use voxgate_codecs::opus::OpusDecoder;
use voxgate_codecs::{AudioDecoder, G711Decoder, SampleRate, pcm};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn opus_decoder_survives_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..2000),
                                     out_len in 0usize..2000) {
        for rate in [SampleRate::HZ_8000, SampleRate::HZ_48000] {
            let mut dec = OpusDecoder::new(rate).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut out = vec![0i16; out_len];
            if let Ok(n) = dec.decode(&bytes, &mut out) {
                prop_assert!(n <= out_len);
            }
            let _ = dec.recover_fec(&bytes, &mut out);
            let _ = voxgate_codecs::opus::packet_has_fec(&bytes);
            let _ = dec.conceal(&mut out);
        }
    }

    #[test]
    fn g711_decoder_survives_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..3000),
                                     out_len in 0usize..3000) {
        for law in [G711Law::Ulaw, G711Law::Alaw] {
            let mut out = vec![0i16; out_len];
            let r = G711Decoder(law).decode(&bytes, &mut out);
            prop_assert_eq!(r.is_ok(), bytes.len() <= out_len && bytes.len() <= pcm::MAX_PAYLOAD_BYTES);
        }
    }

    #[test]
    fn l16_and_dtmf_survive_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..3000),
                                    out_len in 0usize..2000) {
        let mut out = vec![0i16; out_len];
        if let Ok(n) = pcm::l16_decode(&bytes, &mut out) {
            prop_assert_eq!(n * 2, bytes.len());
        }
        prop_assert_eq!(TelephoneEvent::decode(&bytes).is_ok(), bytes.len() == 4);
    }
}
