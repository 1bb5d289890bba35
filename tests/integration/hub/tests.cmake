spoke_script_test(test_pull_integration python3 ${CMAKE_CURRENT_LIST_DIR}/test_pull.py
                  LABELS integration TIMEOUT 300)
