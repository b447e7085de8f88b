#pragma once
// A generated English-like corpus for the training tests: real structure for a model to find
// (subject-verb agreement, places that depend on the verb, fixed phrases) but a flat enough word
// distribution that a unigram model does poorly. Deterministic.
#include <fstream>
#include <string>

#include "qmeter/train/model.h"

namespace qmeter::train::testing {

inline std::string write_generated_corpus(const std::string& dir, int lines = 2400) {
  const char* singular[] = {"the shepherd", "a king", "the old man", "my brother", "the river", "a stranger"};
  const char* plural[] = {"the shepherds", "two kings", "the elders", "our brothers", "the rivers", "the people"};
  const char* verbs_s[] = {"walks", "speaks", "waits", "sings", "rests"};
  const char* verbs_p[] = {"walk", "speak", "wait", "sing", "rest"};
  const char* places[] = {"by the gate", "in the valley", "upon the hill", "near the sea", "under the tree"};
  const char* times[] = {"in the morning", "at night", "before the storm", "after the feast"};
  std::string text;
  SplitMix64 rng(42);
  for (int i = 0; i < lines; ++i) {
    const bool plural_subject = rng.below(2) == 1;
    const int v = static_cast<int>(rng.below(5));
    text += plural_subject ? plural[rng.below(6)] : singular[rng.below(6)];
    text += " ";
    text += plural_subject ? verbs_p[v] : verbs_s[v];
    text += " ";
    text += places[(v + rng.below(2)) % 5];
    text += " ";
    text += times[rng.below(4)];
    text += rng.below(3) == 0 ? ", and all is well.\n" : ".\n";
  }
  const std::string path = dir + "/corpus.txt";
  std::ofstream(path) << text;
  return path;
}

}  // namespace qmeter::train::testing
