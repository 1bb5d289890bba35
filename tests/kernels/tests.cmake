spoke_test(test_kernels ${CMAKE_CURRENT_LIST_DIR}/test_kernels.c LABELS unit TIMEOUT 120)
