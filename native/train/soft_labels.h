// Offline mentor soft labels: a top-k cache written once by the mentor and
// read during student training, so the mentor need not sit in memory.
//
// Layout of a cache directory:
//   soft_labels.json                 index: format, vocab_size, k, tau, dtypes,
//                                    example/token counts, shards, metadata
//   soft_labels-00000.safetensors    per shard, for its examples in order:
//     offsets   [n+1] I64   token rows of example i are offsets[i]..offsets[i+1]
//     indices   [t,k] I16   (I32 when V > 32768) top-k token ids, best first
//     logprobs  [t,k] F32   (or F16) log q at those ids, q = softmax(mentor/τ)
//     rest_mass [t]   F32   the mentor's probability outside the top k
// One row per target token that counts in the loss (label != -100), in order.
// Disk per token: k·(2 + 4) + 4 bytes, i.e. 196 B at k = 32 (132 B with F16
// log-probs). Written to "<dir>.tmp-<pid>" and renamed when complete.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kd/kd_loss.h"
#include "t5/model.h"

namespace mentor_kd::train {

struct SoftLabelCacheInfo {
  std::string dir;
  int64_t vocab_size = 0;
  int64_t k = 0;
  double tau = 1.0;
  int64_t num_examples = 0;
  int64_t num_tokens = 0;
  std::string index_dtype;    // I16 | I32
  std::string logprob_dtype;  // F32 | F16
  int64_t data_bytes = 0;     // bytes of the shard files
  std::map<std::string, std::string> metadata;
};

class SoftLabelWriter {
 public:
  // Removes "<dir>.tmp-<pid>" folders left by writers that died (their process is gone); the
  // constructor calls it, so a rerun after a killed build starts clean.
  static void remove_stale_temporaries(const std::string& dir);
  SoftLabelWriter(std::string dir, int64_t vocab_size, int64_t k, double tau, at::ScalarType logprob_dtype,
                  int64_t shard_bytes, std::map<std::string, std::string> metadata);
  ~SoftLabelWriter();

  // Runs the mentor teacher-forced (dropout off, no grad) on a batch whose rows
  // are examples first_example, first_example + 1, ... (examples must arrive in
  // order, each once). Returns the number of token rows added.
  int64_t add(t5::T5Model& mentor, const t5::Seq2SeqBatch& batch, int64_t first_example);
  // Adds rows from full mentor logits [B,T,V] with their labels [B,T].
  int64_t add_logits(const at::Tensor& mentor_logits, const at::Tensor& labels, int64_t first_example);
  // Writes what is buffered and the index, then renames the temp dir into place.
  SoftLabelCacheInfo finish(int64_t expected_examples);
  void abort();  // removes the temp dir
  int64_t examples_added() const { return next_example_; }

 private:
  void flush_shard();

  std::string dir_, tmp_dir_;
  int64_t vocab_size_, k_;
  double tau_;
  at::ScalarType index_dtype_, logprob_dtype_;
  int64_t shard_bytes_;
  std::map<std::string, std::string> metadata_;
  int64_t next_example_ = 0, total_tokens_ = 0, data_bytes_ = 0;
  bool done_ = false;
  // Current shard.
  int64_t shard_first_example_ = 0;
  std::vector<int64_t> offsets_{0};
  std::vector<at::Tensor> indices_, logprobs_, rest_;
  int64_t buffered_bytes_ = 0;
  struct ShardEntry {
    std::string file;
    int64_t first_example, num_examples, num_tokens;
  };
  std::vector<ShardEntry> shards_;
};

class SoftLabelCache {
 public:
  explicit SoftLabelCache(const std::string& dir);
  const SoftLabelCacheInfo& info() const { return info_; }
  int64_t num_tokens_of(int64_t example) const;
  // Top-k soft labels aligned with labels [B,T]: row b·T + t holds example
  // example_ids[b]'s next cached token where labels[b,t] != ignore_index, and
  // padding (log-prob −inf, rest 0) elsewhere. Throws when an example's count
  // of target tokens differs from the cache's (another tokenizer or max length).
  kd::TopK gather(const std::vector<int64_t>& example_ids, const at::Tensor& labels, int64_t ignore_index) const;

 private:
  struct Shard {
    std::unique_ptr<io::SafetensorsFile> file;
    int64_t first_example = 0, num_examples = 0, num_tokens = 0;
    at::Tensor offsets, indices, logprobs, rest_mass;
  };
  const Shard& shard_of(int64_t example) const;
  SoftLabelCacheInfo info_;
  std::vector<Shard> shards_;
};

}  // namespace mentor_kd::train
