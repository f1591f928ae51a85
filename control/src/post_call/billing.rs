//! A call's billing record: its billable time (rounded up to the configured
//! increment, at least the minimum) at its channel's rate, and what it asked
//! of the providers.

use voxgate_pipeline::session::Usage;

use crate::config::BillingSettings;
use crate::store::{BillingRecord, CallRow};

/// The rate per minute of `channel`, in millionths of the currency unit.
#[must_use]
pub fn rate_micros(settings: &BillingSettings, channel: &str) -> i64 {
    let rate = match channel {
        "sip" => settings.sip_per_minute,
        "webrtc" => settings.webrtc_per_minute,
        "chat" => settings.chat_per_minute,
        // The operator trying an agent on their own machine: no carrier, no charge.
        // A WhatsApp conversation is billed whole, not by the minute (`record`).
        "console" | "whatsapp" => 0.0,
        _ => settings.stream_per_minute,
    };
    // Rates are checked to be 0..=1000 when the configuration loads.
    (rate * 1_000_000.0).round() as i64
}

/// Billable seconds of a call lasting `duration_ms`.
#[must_use]
pub fn billable_seconds(settings: &BillingSettings, duration_ms: i64) -> i64 {
    if duration_ms <= 0 {
        return 0;
    }
    let seconds = (duration_ms + 999) / 1000;
    let step = i64::from(settings.increment_s.max(1));
    let rounded = (seconds + step - 1) / step * step;
    rounded.max(i64::from(settings.minimum_s))
}

/// The billing record of `call`, which used `usage`.
#[must_use]
pub fn record(settings: &BillingSettings, call: &CallRow, usage: &Usage) -> BillingRecord {
    let per_conversation = call.channel == "whatsapp";
    let billable = if per_conversation { 0 } else { billable_seconds(settings, call.duration_ms) };
    let rate = rate_micros(settings, &call.channel);
    // Rounded to the nearest millionth.
    let amount = if per_conversation {
        (settings.whatsapp_per_conversation * 1_000_000.0).round() as i64
    } else {
        (billable * rate + 30) / 60
    };
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    BillingRecord {
        call_id: call.id.clone(),
        tenant_id: call.tenant_id.clone(),
        agent_id: call.agent_id.clone(),
        channel: call.channel.clone(),
        started_at: call.started_at,
        duration_ms: call.duration_ms,
        billable_seconds: billable,
        rate_per_minute_micros: rate,
        amount_micros: amount,
        stt_audio_ms: int(usage.stt_audio_ms),
        llm_prompt_tokens: int(usage.llm_prompt_tokens),
        llm_completion_tokens: int(usage.llm_completion_tokens),
        tts_characters: int(usage.tts_characters),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_rounded_up_to_the_increment_and_the_minimum() {
        let mut s = BillingSettings::default();
        assert_eq!(billable_seconds(&s, 0), 0, "no time, no charge");
        assert_eq!(billable_seconds(&s, 1), 60);
        assert_eq!(billable_seconds(&s, 60_000), 60);
        assert_eq!(billable_seconds(&s, 60_001), 120);
        s.increment_s = 6;
        assert_eq!(billable_seconds(&s, 7_500), 12);
        s.increment_s = 1;
        s.minimum_s = 30;
        assert_eq!(billable_seconds(&s, 7_500), 30);
        assert_eq!(billable_seconds(&s, 45_200), 46);
    }

    #[test]
    fn the_amount_is_the_channels_rate_for_the_billable_time() {
        let s = BillingSettings::default();
        let call = CallRow {
            id: "c1".into(),
            tenant_id: "t1".into(),
            agent_id: None,
            campaign_id: None,
            channel: "sip".into(),
            direction: "inbound".into(),
            status: "caller_hung_up".into(),
            caller: None,
            callee: None,
            external_id: None,
            room: None,
            started_at: 0,
            ended_at: 90_000,
            duration_ms: 90_000,
            recording: None,
            detail: String::new(),
        };
        let usage = Usage { tts_characters: 420, ..Usage::default() };
        let r = record(&s, &call, &usage);
        assert_eq!((r.billable_seconds, r.rate_per_minute_micros, r.amount_micros), (120, 50_000, 100_000));
        assert_eq!(r.tts_characters, 420);
        assert_eq!(rate_micros(&s, "chat"), 10_000);
        assert_eq!(rate_micros(&s, "twilio"), 40_000);
    }
}
