// AdamW (Loshchilov & Hutter 2019): Adam with bias correction and decoupled weight decay.
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + weight_decay * p )
#pragma once

#include <cstdint>

namespace flywheel::ops {

struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  int64_t step = 1;  // 1-based step number t for the bias correction
};

template <typename T>
void adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, const AdamWHyper& hyper);

// sum of squares of x[0..n), accumulated in double in a thread-count-independent order.
template <typename T>
double sum_of_squares(const T* x, int64_t n);


}  // namespace flywheel::ops
