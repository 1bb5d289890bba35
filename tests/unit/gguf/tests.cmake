spoke_test(test_gguf_bad ${CMAKE_CURRENT_LIST_DIR}/test_gguf_bad.c LABELS unit TIMEOUT 120)
spoke_test(test_gguf ${CMAKE_CURRENT_LIST_DIR}/test_gguf.c LABELS unit TIMEOUT 120)
spoke_test(test_quantize ${CMAKE_CURRENT_LIST_DIR}/test_quantize.c LABELS unit TIMEOUT 120)
spoke_test(test_gguf_split ${CMAKE_CURRENT_LIST_DIR}/test_gguf_split.c LABELS unit TIMEOUT 120)
