// Per-sample scores and selections as CSV files, so valuation, selection and
// training can run as separate steps and a user can inspect or plot them.
//
//   scores.csv     index,label,entropy,el2n,grad_norm,forgetting,value
//   selection.csv  index,label,value,band
//
// Rows are in index order; floats are written with 9 significant digits, which
// reads back to the same float bit for bit. Files are written atomically.
#pragma once
#include <cstdint>
#include <string>

#include "leanai/data/sample_scores.h"
#include "leanai/data/selection.h"

namespace leanai {

// Throws Error when the columns differ in length, a label is negative (not
// filled in) or a score is not finite (it could not be read back).
void write_scores_csv(const std::string& path, const SampleScores& s);

// Reads a file written by write_scores_csv. Any problem (missing file, wrong
// header, wrong field count, index not running 0..n-1 in order, a number that
// does not parse fully or is not finite) is an Error naming the path, the line
// and what to do. expected_size >= 0 also checks the row count, to catch
// scores computed for a different data set.
SampleScores read_scores_csv(const std::string& path, int64_t expected_size = -1);

// The chosen samples with their label, value and band (-1 when not
// stratified). Throws Error for an index outside s or a band list of another
// length than the index list.
void write_selection_csv(const std::string& path, const Selection& sel, const SampleScores& s);

}  // namespace leanai
