// Counter-based uniforms for sampling: a pure function of (seed, sample index, step), so a sampled
// sequence is the same whatever else shares the batch, for any slot count or order, and after a resume.
#pragma once
#include <cstdint>

namespace mentor_kd::generate {

inline uint64_t mix64(uint64_t z) {
  // splitmix64's finaliser: a bijection with full avalanche.
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 53 random bits.
inline double counter_uniform(uint64_t seed, uint64_t sample, uint64_t step) {
  uint64_t h = mix64(seed);
  h = mix64(h ^ (sample * 0xd1b54a32d192ed03ULL));
  h = mix64(h ^ (step * 0x8cb92ba72f3d8dd7ULL));
  return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace mentor_kd::generate
