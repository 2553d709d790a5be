// capsnet_int8_tflite: a TFLite flatbuffer of 283752 bytes, written by keras-caps' exporter.
#ifndef CAPSNET_INT8_TFLITE_H_
#define CAPSNET_INT8_TFLITE_H_

extern const unsigned char capsnet_int8_tflite[];
extern const unsigned int capsnet_int8_tflite_len;
// The class of each score, in order.
extern const char* const capsnet_int8_tflite_labels[];
extern const int capsnet_int8_tflite_labels_count;

#endif  // CAPSNET_INT8_TFLITE_H_
