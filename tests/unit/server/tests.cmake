spoke_test(test_admit ${CMAKE_CURRENT_LIST_DIR}/test_admit.c LABELS unit TIMEOUT 60)
