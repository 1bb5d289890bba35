spoke_test(test_engine_batch ${CMAKE_CURRENT_LIST_DIR}/test_engine_batch.c LABELS unit TIMEOUT 300)
