spoke_test(test_batch ${CMAKE_CURRENT_LIST_DIR}/test_batch.c LABELS golden TIMEOUT 300)
