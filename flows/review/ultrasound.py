"""How the review page shows and plays a window: at the band its model analysed, and, when that
band reaches above human hearing (bats), ten times slower.

A window's band (`windows.band_low_hz` / `band_high_hz`, schema version 11) is what its model
listened to. The spectrogram's frequency axis spans it, so a BirdNET window shows 0 to 15 kHz and
a BatDetect2 window its ultrasonic band. Windows analysed before the band was recorded show 0 to
the recording's Nyquist frequency, as before. Which windows play slowed: docs/review.md.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A band whose top lies above this is ultrasonic: no bird model listens there (BirdNET stops at
#: 15 kHz, every 48 kHz model at 24 kHz), every bat model does (BatDetect2 up to 120 kHz).
ULTRASONIC_TOP_HZ = 30_000.0
#: How many times slower an ultrasonic window plays (time expansion): a 45 kHz call sounds at
#: 4.5 kHz and a 5 ms call lasts 50 ms, as on a time-expansion bat detector.
TIME_EXPANSION = 10
#: STFT frame length for ultrasonic windows, seconds: bat calls last 1 to 20 ms, so the page's
#: 20 ms frames would smear a call into one column.
ULTRASONIC_FRAME_S = 0.001


@dataclass(frozen=True)
class Listening:
    """How to show and play one window."""

    slower: int  # 1: as recorded; TIME_EXPANSION: time-expanded
    band_hz: tuple[float, float] | None  # the spectrogram's frequency range; None: 0 to Nyquist

    @property
    def ultrasonic(self) -> bool:
        return self.slower > 1


def listening(band_low_hz: float | None, band_high_hz: float | None,
              sample_rate_hz: int | None) -> Listening:
    """What the page does with a window whose model analysed [band_low_hz, band_high_hz] of a
    recording at sample_rate_hz (band None: not recorded, the whole recording counts)."""
    if band_high_hz is None:
        top = (sample_rate_hz or 0) / 2
        return Listening(TIME_EXPANSION if top > ULTRASONIC_TOP_HZ else 1, None)
    band = (float(band_low_hz or 0.0), float(band_high_hz))
    return Listening(TIME_EXPANSION if band[1] > ULTRASONIC_TOP_HZ else 1, band)
